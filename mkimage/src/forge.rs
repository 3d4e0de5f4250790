//! Test hook: turn a good initrd into one that breaks a manifest rule.
//!
//! mkimage never writes an initrd that breaks a rule; the kernel must
//! still refuse one that does (a hand-made or tampered initrd). `make
//! test` checks that by building a smoke image with the environment
//! variable [`FORGE_ENV`] set to a [`Forgery`] name: `mkimage build` then
//! rewrites its own (valid) output with [`forge`] just before writing it,
//! bypassing its checks, and the harness expects the kernel's `PANIC bad
//! initrd: <rule>`. Not for anything else.

use abi::initrd::{self, InitrdError};
use abi::manifest::SelfTest;

/// The environment variable `mkimage build` reads (test use only).
pub const FORGE_ENV: &str = "MKIMAGE_TEST_FORGE";

/// One way to break the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// `selftests = ["smp", "smp"]`: once, all of them ran (and a thousand
    /// of them outlasted the watchdog).
    DuplicateSelfTests,
    /// A scenario name holding a newline and a forged verdict line.
    ForgedName,
}

impl Forgery {
    /// Every forgery, by name.
    pub const ALL: [Forgery; 2] = [Forgery::DuplicateSelfTests, Forgery::ForgedName];

    /// Its name (the value of [`FORGE_ENV`]).
    pub const fn name(self) -> &'static str {
        match self {
            Forgery::DuplicateSelfTests => "duplicate-selftests",
            Forgery::ForgedName => "forged-name",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<Forgery> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The scenario name [`Forgery::ForgedName`] writes.
pub const FORGED_NAME: &str = "forged\nSCENARIO forged PASS";

/// Decodes the valid initrd `bytes`, breaks one rule, and re-encodes it
/// with a correct header and checksum.
pub fn forge(bytes: &[u8], how: Forgery) -> Result<Vec<u8>, String> {
    let mut payload = initrd::decode(bytes).map_err(|e: InitrdError| e.to_string())?;
    match how {
        Forgery::DuplicateSelfTests => {
            payload.manifest.scenario.selftests = vec![SelfTest::Smp, SelfTest::Smp];
        }
        Forgery::ForgedName => payload.manifest.scenario.name = FORGED_NAME,
    }
    initrd::encode(&payload).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use abi::validate::Rule;

    #[test]
    fn forged_initrds_are_refused_by_the_kernels_check() {
        let doc = crate::manifest::parse("[scenario]\nname = \"t\"\n").expect("valid");
        let good = crate::image::encode(&doc, &[]).expect("encodes");
        let cases = [
            (
                Forgery::DuplicateSelfTests,
                Rule::DuplicateSelfTest(SelfTest::Smp),
            ),
            (Forgery::ForgedName, Rule::ScenarioName),
        ];
        for (how, rule) in cases {
            assert_eq!(Forgery::from_name(how.name()), Some(how));
            let bad = forge(&good, how).expect("forged");
            match initrd::decode(&bad) {
                Err(InitrdError::BadManifest(v)) => assert_eq!(v.rule, rule),
                other => panic!("{how:?}: {other:?}"),
            }
            // Header and checksum are right: only the rules refuse it.
            assert!(initrd::decode_unchecked(&bad).is_ok());
        }
    }
}
