//! The qr crate's one integration-test binary.

mod cpm;
mod mpm_encode;
mod mpm_properties;
mod mpm_refusals;
mod mpm_vectors;
mod recognition;
mod robustness;
mod strategies;
mod support;
mod upi;
