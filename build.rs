//! Embeds the LibTorch library folder as an rpath so the binary runs without
//! `LD_LIBRARY_PATH`, and links the CUDA backend eagerly when the wheel ships
//! its runtime (a CUDA install), since `--as-needed` would otherwise drop it.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Some(lib) = std::env::var_os("DEP_TCH_LIBTORCH_LIB").map(PathBuf::from) else {
        return;
    };
    let lib = lib.canonicalize().unwrap_or(lib);
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    // A CUDA install ships cuBLAS beside the CUDA runtime; the CPU install
    // has the runtime only.
    let cuda_libs = lib.join("../../nvidia/cu13/lib");
    if lib.join("libtorch_cuda.so").exists() && cuda_libs.join("libcublas.so.13").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
