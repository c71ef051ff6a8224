//! Which instruction set the kernels use, chosen once per process at run time.
//!
//! The kernels are written once, generic over a vector type ([`super::Simd`]), and compiled
//! once per level inside a function that enables the level's target features; [`simd!`] picks
//! the copy for the level in use. So a binary built without `-C target-cpu` runs the AVX-512
//! or AVX2 + FMA code on a CPU that has it, and the baseline code (SSE2 on x86-64, NEON on
//! aarch64) everywhere else. `RNNLM_SIMD=avx512|avx2|baseline` forces a level (to test each on
//! one machine); a level the CPU lacks, or an unknown name, is refused with a warning on
//! stderr and the detected level is used instead.

use std::sync::atomic::{AtomicU8, Ordering};

/// An instruction-set level of the kernels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SimdLevel {
    /// AVX-512F: 16-lane vectors, 32 registers.
    Avx512,
    /// AVX2 with FMA: 8-lane vectors, 16 registers.
    Avx2,
    /// What the target guarantees: SSE2 on x86-64, NEON on aarch64 (4 lanes, through `wide`),
    /// plain scalar code elsewhere. Without FMA on x86-64: a multiply-add rounds twice.
    Baseline,
}

impl SimdLevel {
    /// The name `RNNLM_SIMD` takes and reports print: `avx512`, `avx2` or `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Avx512 => "avx512",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Baseline => "baseline",
        }
    }

    /// Lanes of one vector at this level.
    pub fn lanes(self) -> usize {
        match self {
            SimdLevel::Avx512 => 16,
            SimdLevel::Avx2 => 8,
            SimdLevel::Baseline => 4,
        }
    }

    /// Whether this CPU can run the level.
    pub fn is_supported(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx512 => is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            SimdLevel::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            SimdLevel::Baseline => true,
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// Every level, best first.
    pub const ALL: [SimdLevel; 3] = [SimdLevel::Avx512, SimdLevel::Avx2, SimdLevel::Baseline];

    fn from_name(name: &str) -> Option<SimdLevel> {
        SimdLevel::ALL.into_iter().find(|level| level.name() == name)
    }
}

impl std::fmt::Display for SimdLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The level in use as 1 + its index in [`SimdLevel::ALL`]; `0` until the first call of
/// [`simd_level`] settles it.
static LEVEL: AtomicU8 = AtomicU8::new(0);

/// The level the kernels use in this process: the best this CPU supports, or the one
/// `RNNLM_SIMD` names (read once, at the first kernel call).
#[inline]
pub fn simd_level() -> SimdLevel {
    match LEVEL.load(Ordering::Relaxed) {
        0 => settle_level(),
        code => SimdLevel::ALL[code as usize - 1],
    }
}

#[cold]
fn settle_level() -> SimdLevel {
    let detected = SimdLevel::ALL.into_iter().find(|level| level.is_supported()).unwrap_or(SimdLevel::Baseline);
    let level = match std::env::var("RNNLM_SIMD") {
        Err(_) => detected,
        Ok(name) => match SimdLevel::from_name(&name) {
            Some(forced) if forced.is_supported() => forced,
            Some(_) => {
                eprintln!("warning: RNNLM_SIMD={name}: this CPU cannot run it; using {detected}");
                detected
            }
            None => {
                eprintln!("warning: RNNLM_SIMD={name} is not one of avx512, avx2, baseline; using {detected}");
                detected
            }
        },
    };
    let index = SimdLevel::ALL.iter().position(|&l| l == level).expect("ALL holds every level");
    // Every thread that races here computes the same level.
    LEVEL.store(index as u8 + 1, Ordering::Relaxed);
    level
}

/// Runs `f` with AVX-512F enabled: `f` is inlined here, and with it every `#[inline(always)]`
/// function it calls, so that the vector type's intrinsics compile to AVX-512 instructions.
///
/// # Safety
/// The CPU must support AVX-512F ([`simd_level`] says so).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub(crate) unsafe fn with_avx512<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// [`with_avx512`] for AVX2 and FMA.
///
/// # Safety
/// The CPU must support AVX2 and FMA ([`simd_level`] says so).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// `simd!(V => expression)`: evaluates `expression` with the type `V` bound to the vector type
/// of the level in use, compiled with that level's target features. The expression must reach
/// its vector code through `#[inline(always)]` functions only (a function that is not inlined
/// is compiled without the features); so a parallel kernel dispatches inside each task, not
/// around the parallel loop. The cost is one relaxed load and a branch per use.
macro_rules! simd {
    ($V:ident => $body:expr) => {
        match $crate::kernels::simd::simd_level() {
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::simd::SimdLevel::Avx512 => {
                #[allow(unused)]
                type $V = $crate::kernels::simd::F512;
                // SAFETY: the level in use is one the CPU supports.
                unsafe {
                    $crate::kernels::simd::with_avx512(
                        #[inline(always)]
                        || $body,
                    )
                }
            }
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::simd::SimdLevel::Avx2 => {
                #[allow(unused)]
                type $V = $crate::kernels::simd::F256;
                // SAFETY: the level in use is one the CPU supports.
                unsafe {
                    $crate::kernels::simd::with_avx2(
                        #[inline(always)]
                        || $body,
                    )
                }
            }
            _ => {
                #[allow(unused)]
                type $V = $crate::kernels::simd::Baseline;
                $body
            }
        }
    };
}
pub(crate) use simd;
