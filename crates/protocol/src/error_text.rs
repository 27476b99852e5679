//! How an error becomes the one-line text the wire carries (`lastError`, an action's `error`,
//! a probe's reason): its message and then each `source()`, joined with `: `.

use std::error::Error;

/// The error and its sources on one line (`client error (Connect): tcp connect error:
/// Connection refused`): the outermost message alone rarely says what went wrong. A source
/// whose text the line already holds is skipped, for errors outside our crates that repeat
/// their source in their own message.
pub fn error_chain(error: &(dyn Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Wrapper(&'static str, Option<std::io::Error>);

    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Wrapper {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_ref().map(|io| io as _)
        }
    }

    #[test]
    fn sources_follow_the_message_once() {
        let io = || std::io::Error::other("connection reset");
        assert_eq!(
            error_chain(&Wrapper("request failed", Some(io()))),
            "request failed: connection reset"
        );
        assert_eq!(
            error_chain(&Wrapper("request failed: connection reset", Some(io()))),
            "request failed: connection reset"
        );
        assert_eq!(error_chain(&Wrapper("alone", None)), "alone");
    }
}
