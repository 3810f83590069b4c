convc_macros::network!(pub Lenet "specs/lenet5.toml");

fn main() {}
