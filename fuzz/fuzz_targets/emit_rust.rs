#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| convc_fuzz::emit_rust(data));
