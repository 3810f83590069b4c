//! The `network!` proc-macro lives here (issue 5). It will be built on the
//! compiler's parser, checker, planner and Rust code generator, never on the
//! JIT, so a user's build does not compile Cranelift.
