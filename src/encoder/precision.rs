//! Arithmetic of the encoder's matrix products: fp32, bf16, or int8.
//!
//! - `bf16`: every weight and activation in bfloat16; LibTorch (oneDNN)
//!   accumulates in fp32 and uses AVX512_BF16 or AMX where the CPU has them.
//! - `int8`: dynamic quantization of the linear layers. Weights are
//!   smoothed against the input ranges observed on a few built-in texts at
//!   load time (SmoothQuant) and quantized once per output channel;
//!   activations are quantized per token at run time; the product is an
//!   int8 x int8 -> int32 matrix product (VNNI or AMX where present),
//!   rescaled to fp32. Embeddings, layer norms, attention, the feed-forward
//!   output layer and pooling stay in fp32.
//! - `auto`: among the paths this CPU runs natively (read from its feature
//!   flags), the fastest on a fixed probe batch, timed at start-up; fp32 is
//!   always a candidate, so `auto` is never slower than fp32 on the probe,
//!   and on a CPU without the instructions it is fp32 without a probe.
use std::fmt;

/// A concrete path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    Fp32,
    Bf16,
    Int8,
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Fp32 => "fp32",
            Self::Bf16 => "bf16",
            Self::Int8 => "int8",
        })
    }
}

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requested {
    Fixed(Precision),
    Auto,
}

impl Requested {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "fp32" => Ok(Self::Fixed(Precision::Fp32)),
            "bf16" => Ok(Self::Fixed(Precision::Bf16)),
            "int8" => Ok(Self::Fixed(Precision::Int8)),
            "auto" => Ok(Self::Auto),
            other => Err(format!(
                "the precision must be fp32, bf16, int8 or auto, not {other:?}"
            )),
        }
    }
}

/// The reduced-precision units a CPU has, from its feature flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CpuFeatures {
    /// AVX512_BF16 or AMX-BF16.
    pub bf16: bool,
    /// AVX512_VNNI, AVX-VNNI or AMX-INT8.
    pub int8: bool,
}

impl CpuFeatures {
    /// From the `flags` line of `/proc/cpuinfo` (Linux spelling).
    pub fn from_flags(flags: &str) -> Self {
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        Self {
            bf16: has("avx512_bf16") || has("amx_bf16"),
            int8: has("avx512_vnni") || has("avx_vnni") || has("amx_int8"),
        }
    }

    /// This machine's (none where they cannot be read).
    /// `DETECTIVE_CPU_FLAGS` stands in for the flags, to force a fallback.
    pub fn detect() -> Self {
        if let Ok(flags) = std::env::var("DETECTIVE_CPU_FLAGS") {
            return Self::from_flags(&flags);
        }
        std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("flags"))
                    .map(|l| Self::from_flags(l.split_once(':').map_or("", |(_, v)| v)))
            })
            .unwrap_or_default()
    }

    /// The paths `auto` times: fp32 first, then the native ones.
    pub fn candidates(self) -> Vec<Precision> {
        let mut out = vec![Precision::Fp32];
        if self.bf16 {
            out.push(Precision::Bf16);
        }
        if self.int8 {
            out.push(Precision::Int8);
        }
        out
    }
}

/// The fastest of timed candidates `(path, seconds)`; fp32 unless another is
/// faster by more than 5% (timing noise must not switch paths).
pub fn fastest(timed: &[(Precision, f64)]) -> Precision {
    let fp32 = timed
        .iter()
        .find(|(p, _)| *p == Precision::Fp32)
        .map_or(f64::INFINITY, |t| t.1);
    timed
        .iter()
        .filter(|(_, t)| *t < fp32 * 0.95)
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map_or(Precision::Fp32, |t| t.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_name_the_native_paths() {
        let epyc_avx2 = "fpu sse2 avx avx2 fma bmi2";
        assert_eq!(CpuFeatures::from_flags(epyc_avx2), CpuFeatures::default());
        assert_eq!(
            CpuFeatures::from_flags(epyc_avx2).candidates(),
            [Precision::Fp32]
        );
        let sapphire = "avx2 avx512f avx512_vnni avx512_bf16 amx_bf16 amx_int8 amx_tile";
        assert_eq!(
            CpuFeatures::from_flags(sapphire).candidates(),
            [Precision::Fp32, Precision::Bf16, Precision::Int8]
        );
        // A prefix is not the flag.
        assert!(!CpuFeatures::from_flags("avx512_vnnix").int8);
    }

    #[test]
    fn auto_keeps_fp32_unless_clearly_faster() {
        use Precision::*;
        assert_eq!(fastest(&[(Fp32, 1.0)]), Fp32);
        assert_eq!(fastest(&[(Fp32, 1.0), (Bf16, 0.97)]), Fp32);
        assert_eq!(fastest(&[(Fp32, 1.0), (Bf16, 0.5), (Int8, 0.4)]), Int8);
        assert_eq!(fastest(&[(Fp32, 1.0), (Bf16, 2.0)]), Fp32);
    }

    #[test]
    fn requests_parse() {
        assert_eq!(Requested::parse("auto"), Ok(Requested::Auto));
        assert_eq!(
            Requested::parse("bf16"),
            Ok(Requested::Fixed(Precision::Bf16))
        );
        assert!(Requested::parse("fp16").unwrap_err().contains("fp32, bf16"));
    }
}
