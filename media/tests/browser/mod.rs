//! The aiortc browser stand-in lives in the testkit (`callscope_testkit::aiortc`), so
//! benchmarks can drive it too; the tests that include this module by path keep their
//! `browser::` names.
#![allow(unused_imports)]
pub use callscope_testkit::aiortc::*;
