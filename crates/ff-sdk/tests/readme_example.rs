//! The README's Rust snippets are excerpts of `examples/rust-worker`, which
//! `cargo test` compiles: every line of a snippet appears in the example,
//! in the same order (indentation aside).

#[test]
fn readme_snippet_is_an_excerpt_of_the_compiled_example() {
    assert_excerpt("## Rust SDK");
}

#[test]
fn readme_suspend_snippet_is_an_excerpt_of_the_compiled_example() {
    assert_excerpt("## Waiting for the outside world");
}

/// The first ```rust block of the README section headed `heading` is an
/// excerpt of the example.
fn assert_excerpt(heading: &str) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../..");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).expect("README");
    let example = std::fs::read_to_string(format!("{root}/examples/rust-worker/worker.rs"))
        .expect("the example");
    let snippet = readme
        .split(heading)
        .nth(1)
        .and_then(|section| section.split("```rust\n").nth(1))
        .and_then(|block| block.split("```").next())
        .unwrap_or_else(|| panic!("a ```rust block in the README's {heading} section"));

    let mut lines = example.lines().map(str::trim);
    for wanted in snippet.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            lines.any(|line| line == wanted),
            "README line not found (in order) in examples/rust-worker/worker.rs: {wanted}"
        );
    }
}
