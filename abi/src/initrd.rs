//! The initrd container: a fixed header, then a postcard payload.
//!
//! ```text
//! offset  size  field
//!      0     8  MAGIC ("CAPKINRD")
//!      8     4  FORMAT_VERSION (u32 LE)
//!     12     4  header length (u32 LE, = HEADER_LEN)
//!     16     8  payload length in bytes (u64 LE)
//!     24     8  checksum of the payload (u64 LE, see [`checksum`])
//!     32     -  payload: postcard-encoded [`Payload`]
//! ```
//!
//! The payload borrows from the buffer it is decoded from: the kernel
//! decodes it in place in the Multiboot2 module and maps program images
//! from there without copying.
//!
//! [`decode`] trusts nothing: after the checksum it decodes with every
//! vector bounded (an over-long one is refused before it is allocated) and
//! then checks every manifest rule ([`crate::validate::payload`]), so a
//! hand-made initrd that mkimage would never write is refused as a whole.

use alloc::vec::Vec;
use serde::{Deserialize, Serialize};

use crate::limits::IMAGES_MAX;
use crate::manifest::{bounded, Manifest};
use crate::validate::Violation;

/// First eight bytes of every initrd.
pub const MAGIC: [u8; 8] = *b"CAPKINRD";
/// Current format version. 2: programs carry `kernel_kib`; 3: the
/// manifest carries `[kernel]` ([`crate::kernel_modes::KernelConfig`]).
pub const FORMAT_VERSION: u32 = 3;
/// Bytes in the fixed header.
pub const HEADER_LEN: usize = 32;
/// Largest payload accepted (keeps boot time bounded).
pub const PAYLOAD_MAX: u64 = 64 << 20;

/// What the initrd carries.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload<'a> {
    /// The validated manifest.
    #[serde(borrow)]
    pub manifest: Manifest<'a>,
    /// Program images by name.
    #[serde(borrow, deserialize_with = "bounded::vec::<_, _, IMAGES_MAX>")]
    pub programs: Vec<ProgramImage<'a>>,
}

impl<'a> Payload<'a> {
    /// Finds a program image by name.
    pub fn program(&self, name: &str) -> Option<&ProgramImage<'a>> {
        self.programs.iter().find(|p| p.name == name)
    }
}

/// One program's ELF file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgramImage<'a> {
    /// Name used by manifests and spawn.
    pub name: &'a str,
    /// The ELF file, unchanged.
    #[serde(with = "serde_bytes_borrowed")]
    pub elf: &'a [u8],
}

mod serde_bytes_borrowed {
    //! `&[u8]` as a serde byte string (postcard stores it as length + bytes),
    //! borrowed on decode.
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &&[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(v)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<&'de [u8], D::Error> {
        <&'de [u8] as serde::Deserialize<'de>>::deserialize(d)
    }
}

/// Why an initrd was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitrdError {
    /// Shorter than the header.
    TooShort,
    /// The magic does not match.
    BadMagic,
    /// A format version this build does not read.
    BadVersion(u32),
    /// The header length field is wrong.
    BadHeaderLen(u32),
    /// The payload length exceeds the data or the limit.
    BadLength { declared: u64, available: u64 },
    /// The checksum does not match.
    BadChecksum { declared: u64, computed: u64 },
    /// postcard could not decode the payload (or a vector exceeds its limit).
    BadPayload,
    /// The payload decodes but breaks a manifest rule.
    BadManifest(Violation),
}

impl core::fmt::Display for InitrdError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            InitrdError::TooShort => write!(f, "initrd shorter than its {HEADER_LEN}-byte header"),
            InitrdError::BadMagic => write!(f, "initrd magic mismatch"),
            InitrdError::BadVersion(v) => {
                write!(f, "initrd format version {v}, expected {FORMAT_VERSION}")
            }
            InitrdError::BadHeaderLen(v) => {
                write!(f, "initrd header length {v}, expected {HEADER_LEN}")
            }
            InitrdError::BadLength {
                declared,
                available,
            } => write!(
                f,
                "initrd payload length {declared} but {available} bytes follow the header"
            ),
            InitrdError::BadChecksum { declared, computed } => write!(
                f,
                "initrd checksum mismatch: header {declared:#018x}, computed {computed:#018x}"
            ),
            InitrdError::BadPayload => write!(f, "initrd payload does not decode"),
            InitrdError::BadManifest(v) => write!(f, "{v}"),
        }
    }
}

/// The payload checksum: a 64-bit multiply-rotate hash over little-endian
/// words (the tail zero-padded), seeded with the length. Word-at-a-time so
/// that the kernel's check stays cheap when guest kernel code is emulated.
pub fn checksum(data: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = (data.len() as u64) ^ 0x243f_6a88_85a3_08d3;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    h ^ (h >> 31)
}

/// Builds a complete initrd (header + payload).
pub fn encode(payload: &Payload<'_>) -> Result<Vec<u8>, postcard::Error> {
    let body = postcard::to_allocvec(payload)?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&checksum(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

fn le_u32(b: &[u8]) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[..4]);
    u32::from_le_bytes(w)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[..8]);
    u64::from_le_bytes(w)
}

/// Checks the header and checksum and returns the payload bytes.
pub fn verify(data: &[u8]) -> Result<&[u8], InitrdError> {
    if data.len() < HEADER_LEN {
        return Err(InitrdError::TooShort);
    }
    if data[..8] != MAGIC {
        return Err(InitrdError::BadMagic);
    }
    let version = le_u32(&data[8..]);
    if version != FORMAT_VERSION {
        return Err(InitrdError::BadVersion(version));
    }
    let header_len = le_u32(&data[12..]);
    if header_len as usize != HEADER_LEN {
        return Err(InitrdError::BadHeaderLen(header_len));
    }
    let declared = le_u64(&data[16..]);
    let available = (data.len() - HEADER_LEN) as u64;
    if declared > available || declared > PAYLOAD_MAX {
        return Err(InitrdError::BadLength {
            declared,
            available,
        });
    }
    // `declared <= available` fits in usize.
    let body = &data[HEADER_LEN..HEADER_LEN + declared as usize];
    let declared_sum = le_u64(&data[24..]);
    let computed = checksum(body);
    if declared_sum != computed {
        return Err(InitrdError::BadChecksum {
            declared: declared_sum,
            computed,
        });
    }
    Ok(body)
}

/// Verifies, decodes and validates an initrd, borrowing from `data`.
pub fn decode(data: &[u8]) -> Result<Payload<'_>, InitrdError> {
    let payload = decode_unchecked(data)?;
    crate::validate::payload(&payload).map_err(InitrdError::BadManifest)?;
    Ok(payload)
}

/// Verifies and decodes an initrd without checking the manifest rules
/// (vector lengths are still bounded). For tools that look at, or make, a
/// bad initrd on purpose; whatever runs one uses [`decode`].
pub fn decode_unchecked(data: &[u8]) -> Result<Payload<'_>, InitrdError> {
    let body = verify(data)?;
    postcard::from_bytes(body).map_err(|_| InitrdError::BadPayload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::caps::CapKind;
    use crate::manifest::*;
    use alloc::vec;

    fn sample() -> Vec<u8> {
        let elf = [0x7fu8, b'E', b'L', b'F', 1, 2, 3];
        let p = Payload {
            manifest: Manifest {
                scenario: Scenario {
                    name: "x",
                    description: Some("d"),
                    timeout_ms: Some(5),
                    selftests: alloc::vec![crate::manifest::SelfTest::Smp],
                },
                programs: vec![ProgramSpec {
                    name: "p",
                    args: vec!["a", "b"],
                    caps: vec![CapKind::Console],
                    expect: Expect::Exit(3),
                    kernel_kib: Some(4096),
                }],
                workload: None,
                kernel: KernelConfig::default(),
            },
            programs: vec![ProgramImage {
                name: "p",
                elf: &elf,
            }],
        };
        encode(&p).unwrap()
    }

    #[test]
    fn round_trip() {
        let bytes = sample();
        let p = decode(&bytes).unwrap();
        assert_eq!(p.manifest.scenario.name, "x");
        assert_eq!(p.program("p").unwrap().elf.len(), 7);
        assert_eq!(p.manifest.programs[0].args, vec!["a", "b"]);
    }

    #[test]
    fn corruption_detected() {
        let good = sample();
        let mut b = good.clone();
        b[0] ^= 1;
        assert_eq!(decode(&b), Err(InitrdError::BadMagic));
        let mut b = good.clone();
        b[8] = 9;
        assert_eq!(decode(&b), Err(InitrdError::BadVersion(9)));
        let mut b = good.clone();
        let last = b.len() - 1;
        b[last] ^= 0x40;
        assert!(matches!(decode(&b), Err(InitrdError::BadChecksum { .. })));
        let b = &good[..good.len() - 1];
        assert!(matches!(decode(b), Err(InitrdError::BadLength { .. })));
        assert_eq!(decode(&good[..10]), Err(InitrdError::TooShort));
    }

    /// A whole initrd around a hand-made payload.
    fn wrap(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(HEADER_LEN as u32).to_le_bytes());
        out.extend_from_slice(&(body.len() as u64).to_le_bytes());
        out.extend_from_slice(&checksum(body).to_le_bytes());
        out.extend_from_slice(body);
        out
    }

    /// postcard's varint for a length.
    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    /// A payload whose scenario is `name` "x", no description or timeout,
    /// then `selftests` of `declared` entries of which `present` follow.
    fn selftests_payload(declared: u64, present: usize) -> Vec<u8> {
        let mut b = vec![1, b'x', 0, 0];
        varint(declared, &mut b);
        b.extend(core::iter::repeat_n(0u8, present)); // SelfTest::Smp
                                                      // No programs, no workload, [kernel] auto/auto, no images.
        b.extend_from_slice(&[0, 0, 0, 0, 0]);
        wrap(&b)
    }

    #[test]
    fn hand_made_payload_decodes() {
        let bytes = selftests_payload(1, 1);
        let p = decode(&bytes).expect("valid");
        assert_eq!(p.manifest.scenario.selftests, vec![SelfTest::Smp]);
    }

    #[test]
    fn huge_declared_vector_refused_before_allocating() {
        // 2^60 self-tests (or programs) would be an allocation failure if
        // the decoder trusted the declared length.
        assert_eq!(
            decode(&selftests_payload(1 << 60, 4)),
            Err(InitrdError::BadPayload)
        );
        let limit = crate::limits::SELFTESTS_MAX;
        assert_eq!(
            decode(&selftests_payload(limit as u64 + 1, limit + 1)),
            Err(InitrdError::BadPayload)
        );
        let mut b = vec![1, b'x', 0, 0, 0];
        varint(u64::MAX >> 1, &mut b);
        assert_eq!(decode(&wrap(&b)), Err(InitrdError::BadPayload));
    }

    #[test]
    fn vector_at_its_limit_decodes_then_rules_apply() {
        let limit = crate::limits::SELFTESTS_MAX;
        let bytes = selftests_payload(limit as u64, limit);
        let p = decode_unchecked(&bytes).expect("decodes");
        assert_eq!(p.manifest.scenario.selftests.len(), limit);
        // ...and the rules refuse the duplicates.
        assert!(matches!(
            decode(&bytes),
            Err(InitrdError::BadManifest(crate::validate::Violation {
                rule: crate::validate::Rule::DuplicateSelfTest(SelfTest::Smp),
                ..
            }))
        ));
    }

    #[test]
    fn too_many_programs_refused_as_bad_payload() {
        let specs = vec![
            ProgramSpec {
                name: "p",
                args: vec![],
                caps: vec![],
                expect: Expect::Exit(0),
                kernel_kib: None,
            };
            crate::limits::PROGRAMS_MAX + 1
        ];
        let p = Payload {
            manifest: Manifest {
                scenario: Scenario {
                    name: "x",
                    description: None,
                    timeout_ms: None,
                    selftests: vec![],
                },
                programs: specs,
                workload: None,
                kernel: KernelConfig::default(),
            },
            programs: vec![],
        };
        let bytes = encode(&p).unwrap();
        assert_eq!(decode(&bytes), Err(InitrdError::BadPayload));
    }

    #[test]
    fn kernel_table_round_trips() {
        use crate::kernel_modes::{ApicMode, TimerMode};
        let good = sample();
        let mut p = decode(&good).unwrap();
        assert_eq!(p.manifest.kernel, KernelConfig::default());
        p.manifest.kernel = KernelConfig {
            apic: ApicMode::X2Apic,
            timer: TimerMode::TscDeadline,
        };
        let bytes = encode(&p).unwrap();
        let q = decode(&bytes).unwrap();
        assert_eq!(q.manifest.kernel.apic, ApicMode::X2Apic);
        assert_eq!(q.manifest.kernel.timer, TimerMode::TscDeadline);
        // An enum index beyond the known modes does not decode.
        let mut body = bytes[HEADER_LEN..].to_vec();
        let n = body.len();
        // The payload ends with kernel.apic, kernel.timer and the image
        // list: one image, name "p" (length 1), 7 ELF bytes (length 7).
        let tail = 2 + 1 + 1 + 1 + 1 + 7;
        assert_eq!(&body[n - tail..n - tail + 2], &[2, 2]);
        body[n - tail] = 9;
        assert_eq!(decode(&wrap(&body)), Err(InitrdError::BadPayload));
    }

    #[test]
    fn bad_manifest_is_refused_with_its_rule() {
        let good = sample();
        let mut p = decode(&good).unwrap();
        p.manifest.scenario.name = "x\nSCENARIO x PASS";
        let e = decode(&encode(&p).unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "scenario name must be 1..=48 characters from [a-z0-9-] (at [scenario] name)"
        );
    }

    #[test]
    fn checksum_sensitive_to_every_byte() {
        let data: Vec<u8> = (0..37u8).collect();
        let base = checksum(&data);
        for i in 0..data.len() {
            let mut d = data.clone();
            d[i] ^= 1;
            assert_ne!(checksum(&d), base, "byte {i}");
        }
    }
}
