//! The README's Rust snippet is an excerpt of `examples/rust-worker`, which
//! `cargo test` compiles: every line of the snippet appears in the example,
//! in the same order (indentation aside).

#[test]
fn readme_snippet_is_an_excerpt_of_the_compiled_example() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let example = std::fs::read_to_string(format!("{root}/examples/rust-worker/worker.rs"))
        .expect("the example");
    let snippet = readme
        .split("## Rust SDK")
        .nth(1)
        .and_then(|section| section.split("```rust\n").nth(1))
        .and_then(|block| block.split("```").next())
        .expect("a ```rust block in the README's Rust SDK section");

    let mut lines = example.lines().map(str::trim);
    for wanted in snippet.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            lines.any(|line| line == wanted),
            "README line not found (in order) in examples/rust-worker/worker.rs: {wanted}"
        );
    }
}
