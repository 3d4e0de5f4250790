//! Kernel self-tests a manifest asks for (`[scenario] selftests = [..]`).
//! Each prints its SMOKE lines and returns whether it passed; init folds
//! the results into the scenario's verdict.

pub mod smp;

use abi::manifest::SelfTest;

/// Runs `tests` in order on the boot CPU; true when all passed.
pub fn run(tests: &[SelfTest]) -> bool {
    let mut ok = true;
    for t in tests {
        ok &= match t {
            SelfTest::Smp => smp::run(),
        };
    }
    ok
}
