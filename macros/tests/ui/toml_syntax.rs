convc_macros::network!(Tiny = r#"
[network]
input = [1, 8, 8

[[layer]]
type = "dense"
units = 3
"#);

fn main() {}
