//! Instruction-set tiers of the int8 kernels, chosen once per process.
//!
//! The tier is the richest one the CPU supports, lowered (never raised) by
//! the environment variable `MXNET_INT8_ISA`. Every tier computes the same
//! bits as the scalar reference, which the tests in `x86` check.

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

/// Environment variable that lowers the int8 kernel tier.
pub const ISA_ENV: &str = "MXNET_INT8_ISA";

/// A kernel tier, ordered from the plainest to the richest.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Isa {
    /// Portable Rust, the reference every other tier must match bit for bit.
    Scalar,
    /// 256-bit vectors: int8 widened to int16 and multiplied with `vpmaddwd`.
    Avx2,
    /// 512-bit vectors with the same `vpmaddwd` scheme as AVX2.
    Avx512Bw,
    /// 512-bit `vpdpbusd` (AVX-512 VNNI), signed data shifted by +128.
    Avx512Vnni,
    /// AVX-512 VNNI, with AMX int8 tiles for 1x1 convolutions and GEMMs of
    /// many rows.
    Amx,
}

impl Isa {
    /// Every tier, plainest first.
    pub const ALL: [Isa; 5] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::Avx512Bw,
        Isa::Avx512Vnni,
        Isa::Amx,
    ];

    /// Returns the name `MXNET_INT8_ISA` accepts for this tier.
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Bw => "avx512bw",
            Isa::Avx512Vnni => "avx512_vnni",
            Isa::Amx => "amx",
        }
    }
}

impl fmt::Display for Isa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tier name that is not one of `amx`, `avx512_vnni`, `avx512bw`, `avx2`, `scalar`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid int8 ISA name {0:?}: expected amx, avx512_vnni, avx512bw, avx2 or scalar")]
pub struct ParseIsaError(pub String);

impl FromStr for Isa {
    type Err = ParseIsaError;

    fn from_str(s: &str) -> Result<Isa, ParseIsaError> {
        let name = s.trim().to_ascii_lowercase();
        Isa::ALL
            .into_iter()
            .find(|isa| isa.name() == name)
            .ok_or_else(|| ParseIsaError(s.to_string()))
    }
}

/// Detects the richest tier this CPU and operating system support.
pub fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    let avx512 = is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl");
    let vnni = avx512 && is_x86_feature_detected!("avx512vnni");
    if vnni && super::x86::amx_supported() {
        Isa::Amx
    } else if vnni {
        Isa::Avx512Vnni
    } else if avx512 {
        Isa::Avx512Bw
    } else if is_x86_feature_detected!("avx2") {
        Isa::Avx2
    } else {
        Isa::Scalar
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Scalar
}

/// Returns the tier the kernels use: [`detected`], lowered by
/// `MXNET_INT8_ISA`. The variable is read once and the choice logged at
/// debug level.
pub fn selected() -> Isa {
    static SELECTED: OnceLock<Isa> = OnceLock::new();
    *SELECTED.get_or_init(|| {
        let detected = detected();
        let requested = std::env::var(ISA_ENV).ok();
        let isa = cap(detected, requested.as_deref());
        log::debug!("int8 kernels use {isa} (this CPU supports up to {detected})");
        isa
    })
}

/// Applies an `MXNET_INT8_ISA` value to the detected tier.
fn cap(detected: Isa, requested: Option<&str>) -> Isa {
    let Some(text) = requested.filter(|t| !t.trim().is_empty()) else {
        return detected;
    };
    match text.parse::<Isa>() {
        Ok(isa) if isa <= detected => isa,
        Ok(isa) => {
            log::warn!("{ISA_ENV}={isa} exceeds what this CPU supports; using {detected}");
            detected
        }
        Err(err) => {
            log::warn!("{err}; {ISA_ENV} is ignored and the kernels use {detected}");
            detected
        }
    }
}

/// Tiers this CPU can run, plainest first (for tests and benchmarks).
pub fn supported() -> impl Iterator<Item = Isa> {
    let top = detected();
    Isa::ALL.into_iter().filter(move |&isa| isa <= top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(isa.name().parse::<Isa>(), Ok(isa));
        }
        assert_eq!(" AVX2 ".parse::<Isa>(), Ok(Isa::Avx2));
        assert!("sse4".parse::<Isa>().is_err());
    }

    #[test]
    fn environment_only_lowers() {
        assert_eq!(cap(Isa::Avx512Vnni, Some("avx2")), Isa::Avx2);
        assert_eq!(cap(Isa::Avx2, Some("avx512_vnni")), Isa::Avx2);
        assert_eq!(cap(Isa::Avx512Bw, Some("bogus")), Isa::Avx512Bw);
        assert_eq!(cap(Isa::Avx512Bw, Some("")), Isa::Avx512Bw);
        assert_eq!(cap(Isa::Avx512Bw, None), Isa::Avx512Bw);
        assert_eq!(cap(Isa::Avx512Vnni, Some("scalar")), Isa::Scalar);
        assert_eq!(cap(Isa::Amx, Some("avx512_vnni")), Isa::Avx512Vnni);
        assert_eq!(cap(Isa::Avx512Vnni, Some("amx")), Isa::Avx512Vnni);
    }
}
