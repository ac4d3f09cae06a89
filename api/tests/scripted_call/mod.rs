//! Scripted two-voice calls: the script, its rendering, the recogniser double, and what the
//! analysis should find, computed from the script.
#![allow(dead_code)]

pub mod expect;
pub mod recognizer;
pub mod script;
