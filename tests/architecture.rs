//! The house's layering, checked on the source text: the spec's layers and the fast paths live
//! apart. Everything that depends on the CPU is in `src/kernels/`; anywhere else in `src/`,
//! intrinsics (`core::arch`, `std::arch`) and `#[target_feature]` are forbidden, so a reader who
//! follows a spec label into `src/cnn/` sees the maths and nothing else.
use std::path::{Path, PathBuf};

/// The words that only `src/kernels/` may write.
const CPU_WORDS: [&str; 3] = ["core::arch", "std::arch", "target_feature"];

/// Every `.rs` file under `dir`, recursively, in a fixed order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            out.extend(rust_files(&p));
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
    out
}

/// The lines (file:line: text) outside `kernels` under `src` that mention a word of
/// [`CPU_WORDS`].
fn offending_lines(src: &Path, kernels: &Path) -> Vec<String> {
    let mut bad = Vec::new();
    for f in rust_files(src) {
        if f.starts_with(kernels) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        for (i, line) in text.lines().enumerate() {
            if CPU_WORDS.iter().any(|w| line.contains(w)) {
                bad.push(format!("{}:{}: {}", f.display(), i + 1, line.trim()));
            }
        }
    }
    bad
}

#[test]
fn only_src_kernels_uses_intrinsics_or_target_feature() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (src, kernels) = (root.join("src"), root.join("src/kernels"));
    assert!(
        !rust_files(&kernels).is_empty(),
        "src/kernels/ holds no Rust files: the check below would prove nothing"
    );
    let bad = offending_lines(&src, &kernels);
    assert!(
        bad.is_empty(),
        "CPU-dependent code outside src/kernels/ ({}):\n{}",
        CPU_WORDS.join(", "),
        bad.join("\n")
    );
}

/// The check itself can fail: a file outside the kernels' folder that names an intrinsic module
/// is reported, and the same file inside it is not.
#[test]
fn the_check_reports_a_mention_outside_the_kernels() {
    let dir = std::env::temp_dir().join(format!("gradspec-architecture-{}", std::process::id()));
    let (src, kernels) = (dir.join("src"), dir.join("src/kernels"));
    std::fs::create_dir_all(&kernels).expect("create the temporary tree");
    std::fs::write(src.join("layer.rs"), "use std::arch::x86_64::*;\n").expect("write");
    std::fs::write(
        kernels.join("fast.rs"),
        "#[target_feature(enable = \"avx2\")]\n",
    )
    .expect("write");
    let bad = offending_lines(&src, &kernels);
    std::fs::remove_dir_all(&dir).expect("remove the temporary tree");
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].ends_with("layer.rs:1: use std::arch::x86_64::*;"),
        "{bad:?}"
    );
}
