//! `network!`: a TOML spec becomes a specialised Rust network type at
//! compile time.
//!
//! ```text
//! convc::network!(pub Lenet5 = "specs/lenet5.toml");   // relative to the crate's Cargo.toml
//! convc::network!(Tiny = r#"
//!     [network]
//!     input = [1, 8, 8]
//!     ...
//! "#);
//! ```
//!
//! A string with a line break is the spec itself; any other string is a
//! path. The spec goes through the same parser, checks and planner as
//! `convc check`; a bad spec stops the build with the same diagnostics
//! (file, line:column, the arithmetic, the fix) as a `compile_error!` on
//! the string. The expansion is `convc emit-rust`'s output plus an
//! `include_bytes!` of the spec file, so that cargo rebuilds when it changes.
//!
//! Built on `convc-compiler` without its default features: a user's build
//! never compiles Cranelift.

use std::path::PathBuf;

use convc_compiler::codegen::rust::{self, RustOptions};
use convc_compiler::plan::Plan;
use convc_compiler::{SourceFile, check_source};
use proc_macro2::TokenStream;
use quote::quote;
use syn::parse::{Parse, ParseStream};
use syn::{Ident, LitStr, Token, Visibility};

/// `[@runtime PATH;] VIS NAME = "spec"`. The `@runtime` prefix is how the
/// `convc` facade passes `$crate::runtime`; used directly, the macro refers
/// to `::convc_runtime`.
struct Input {
    runtime: TokenStream,
    vis: Visibility,
    name: Ident,
    spec: LitStr,
}

impl Parse for Input {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut runtime = quote!(::convc_runtime);
        if input.peek(Token![@]) {
            input.parse::<Token![@]>()?;
            let key: Ident = input.parse()?;
            if key != "runtime" {
                return Err(syn::Error::new(key.span(), "expected `@runtime PATH;`"));
            }
            let mut path = TokenStream::new();
            while !input.peek(Token![;]) {
                path.extend([input.parse::<proc_macro2::TokenTree>()?]);
            }
            input.parse::<Token![;]>()?;
            runtime = path;
        }
        let vis: Visibility = input.parse()?;
        let name: Ident = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected the network type's name: `network!(pub Lenet5 = \"specs/lenet5.toml\")`"))?;
        input.parse::<Token![=]>().map_err(|e| syn::Error::new(e.span(), "expected `=` and the spec: `Name = \"path/to/spec.toml\"`"))?;
        let spec: LitStr = input
            .parse()
            .map_err(|e| syn::Error::new(e.span(), "expected the spec as a string: a path relative to Cargo.toml, or the TOML itself"))?;
        let _ = input.parse::<Option<Token![;]>>()?;
        Ok(Self { runtime, vis, name, spec })
    }
}

/// Declare a network type from a spec; see the crate docs.
#[proc_macro]
pub fn network(input: proc_macro::TokenStream) -> proc_macro::TokenStream {
    let input = syn::parse_macro_input!(input as Input);
    expand(input).unwrap_or_else(|e| e.to_compile_error()).into()
}

fn expand(input: Input) -> syn::Result<TokenStream> {
    let text = input.spec.value();
    let error = |msg: String| syn::Error::new(input.spec.span(), msg);
    let (file, tracked) = if text.contains('\n') {
        (SourceFile::new(format!("<inline spec of {}>", input.name), text), None)
    } else {
        let dir = std::env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from).unwrap_or_default();
        let path = dir.join(&text);
        let source = std::fs::read_to_string(&path).map_err(|e| {
            error(format!("cannot read spec `{text}` ({}): {e}\nhelp: spec paths are relative to the crate's Cargo.toml", path.display()))
        })?;
        (SourceFile::new(text.clone(), source), Some(path))
    };
    let graph = check_source(&file).map_err(|e| error(format!("invalid network spec\n\n{e}")))?;
    let plan = Plan::new(&graph, true);
    let vis = input.vis;
    let opts = RustOptions { runtime: input.runtime, type_name: input.name, vis: quote!(#vis), source: file.name.clone() };
    let mut tokens = rust::network(&graph, &plan, &opts);
    if let Some(path) = tracked {
        let path = path.display().to_string();
        // Cargo rebuilds the crate when a file named by `include_bytes!` changes.
        tokens.extend(quote!(
            const _: &[u8] = include_bytes!(#path);
        ));
    }
    Ok(tokens)
}
