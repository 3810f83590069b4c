convc_macros::network!(Tiny = r#"
[network]
input = [1, 8, 8]

[[layer]]
type = "convolution"
filters = 4
kernel = 3
"#);

fn main() {}
