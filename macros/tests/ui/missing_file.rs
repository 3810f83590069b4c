convc_macros::network!(pub Lenet = "specs/no_such_spec.toml");

fn main() {}
