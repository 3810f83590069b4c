pub mod differential;
pub mod random_spec;
