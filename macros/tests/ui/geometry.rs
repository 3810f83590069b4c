convc_macros::network!(pub Tiny = r#"
[network]
input = [1, 28, 28]

[[layer]]
type = "conv2d"
filters = 4
kernel = 5
stride = 2
"#);

fn main() {}
