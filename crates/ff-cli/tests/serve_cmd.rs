//! `ff serve` start-up as an operator sees it: the line naming the backend
//! and its file before the address line, and the refusal of a SQLite path
//! whose directory is missing.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Scratch;

fn serve(dir: &std::path::Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ff"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .current_dir(dir)
        .env_remove("FF_DATABASE_URL")
        .env_remove("FF_API_TOKEN")
        .env_remove("FF_SQLITE_SYNCHRONOUS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start ff serve")
}

/// The first line of stdout and of stderr of a server that started; it is
/// stopped afterwards.
fn first_lines(mut child: Child) -> (String, String) {
    let mut stdout = String::new();
    let mut stderr = String::new();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    BufReader::new(out).read_line(&mut stdout).expect("stdout");
    BufReader::new(err).read_line(&mut stderr).expect("stderr");
    let _ = child.kill();
    let _ = child.wait();
    (stdout, stderr)
}

/// Waits for a server that should refuse to start; returns its stderr.
fn refused(mut child: Child) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "ff serve should have refused");
            let mut stderr = String::new();
            if let Some(err) = child.stderr.take() {
                std::io::Read::read_to_string(&mut BufReader::new(err), &mut stderr)
                    .expect("stderr");
            }
            return stderr;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("ff serve neither refused nor exited");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_names_its_backend_and_file_before_the_address() {
    let scratch = Scratch::new("serve-says");
    let db = scratch.path("named.db");
    let (stdout, stderr) = first_lines(serve(
        &scratch.0,
        &[
            "--db",
            db.to_str().expect("path"),
            "--synchronous",
            "normal",
        ],
    ));
    assert!(
        stdout.starts_with("listening on http://127.0.0.1:"),
        "{stdout:?}"
    );
    assert_eq!(
        stderr.trim(),
        format!(
            "ff serve: backend sqlite, file {} (synchronous normal)",
            db.display()
        )
    );
    // A relative path is shown absolute, so the operator knows which file.
    let (_, stderr) = first_lines(serve(&scratch.0, &["--db", "sqlite://rel.db"]));
    let expected = scratch.0.join("rel.db");
    assert!(
        stderr.contains(&format!("file {} (synchronous full)", expected.display())),
        "{stderr}"
    );
}

#[test]
fn serve_refuses_a_sqlite_path_whose_directory_is_missing() {
    let scratch = Scratch::new("serve-dirs");
    let db = scratch.path("no/such/dir/ff.db");
    let db = db.to_str().expect("path");
    let stderr = refused(serve(&scratch.0, &["--db", db]));
    assert!(
        stderr.contains("does not exist") && stderr.contains("--create-dirs"),
        "{stderr}"
    );
    assert!(!scratch.path("no").exists(), "nothing was created");

    let (stdout, _) = first_lines(serve(&scratch.0, &["--db", db, "--create-dirs"]));
    assert!(stdout.starts_with("listening on "), "{stdout:?}");
    assert!(scratch.path("no/such/dir/ff.db").exists());

    // The default path's directory is the tool's own: created on a fresh
    // machine without asking.
    let (stdout, stderr) = first_lines(serve(&scratch.0, &[]));
    assert!(stdout.starts_with("listening on "), "{stdout:?}");
    assert!(stderr.contains(".flowfabric/ff.db"), "{stderr}");
    assert!(scratch.path(".flowfabric/ff.db").exists());
}
