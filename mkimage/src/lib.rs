//! mkimage: the host tool that checks scenario manifests and builds and
//! inspects initrds (CONTRACTS.md sections 2 and 3).
//!
//! The library holds the logic with typed errors: [`manifest`] (TOML to a
//! checked manifest, every rule), [`diag`] (byte offsets to
//! `path:line:col`), [`image`] (program ELFs to an initrd) and [`inspect`]
//! (an initrd described), [`read`] (input files: regular files only, size
//! checked before reading). `src/main.rs` is only the command line.
#![forbid(unsafe_code)]

pub mod diag;
pub mod forge;
pub mod image;
pub mod inspect;
pub mod manifest;
pub mod read;
