//! An error and its causes on one line, for the examples' messages:
//! `cannot bind 127.0.0.1:9001: Address already in use (os error 98)`.
//!
//! Each cause is printed once: `pumphub::Error`'s own text already ends
//! with its direct cause, and printing `source()` again would repeat it.
//! (The `pumphub` binary does the same in `src/main.rs`.) Included with
//! `#[path = "common/causes.rs"] mod causes;`.

/// `error: cause: its cause …`, each cause once.
pub fn with_causes(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}
