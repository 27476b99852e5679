//! An ordered YAML document tree for the container targets, serialised by serde-saphyr.
//!
//! Ordered on purpose: `serde_json::Map` sorts its keys, and a compose file or a manifest
//! reads best in the order people write them (`image` first, `depends_on` near the top).
//! Only the shapes the targets need; no parsing here.

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// One YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Map(Vec<(String, Node)>),
    List(Vec<Node>),
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Node {
    /// An empty mapping to add entries to with [`Node::with`].
    pub(crate) fn map() -> Node {
        Node::Map(Vec::new())
    }

    /// This mapping with one more entry.
    pub(crate) fn with(mut self, key: &str, value: impl Into<Node>) -> Node {
        if let Node::Map(entries) = &mut self {
            entries.push((key.to_owned(), value.into()));
        }
        self
    }

    /// This mapping with one more entry when `value` is `Some`.
    pub(crate) fn with_some(self, key: &str, value: Option<impl Into<Node>>) -> Node {
        match value {
            Some(value) => self.with(key, value),
            None => self,
        }
    }

    /// A list of strings.
    pub(crate) fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Node {
        Node::List(
            items
                .into_iter()
                .map(|item| Node::Str(item.as_ref().to_owned()))
                .collect(),
        )
    }
}

impl From<&str> for Node {
    fn from(value: &str) -> Node {
        Node::Str(value.to_owned())
    }
}

impl From<String> for Node {
    fn from(value: String) -> Node {
        Node::Str(value)
    }
}

impl From<u64> for Node {
    fn from(value: u64) -> Node {
        Node::Int(i64::try_from(value).unwrap_or(i64::MAX))
    }
}

impl From<u32> for Node {
    fn from(value: u32) -> Node {
        Node::Int(i64::from(value))
    }
}

impl From<u16> for Node {
    fn from(value: u16) -> Node {
        Node::Int(i64::from(value))
    }
}

impl From<bool> for Node {
    fn from(value: bool) -> Node {
        Node::Bool(value)
    }
}

impl From<Vec<Node>> for Node {
    fn from(items: Vec<Node>) -> Node {
        Node::List(items)
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
            Node::List(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Node::Str(text) => serializer.serialize_str(text),
            Node::Int(number) => serializer.serialize_i64(*number),
            Node::Bool(flag) => serializer.serialize_bool(*flag),
        }
    }
}

/// The document as YAML text.
pub(crate) fn to_text(node: &Node) -> String {
    // Serialising plain maps, lists, strings and numbers into a String has no failure mode;
    // should the library ever report one, the file says so instead of being cut short.
    serde_saphyr::to_string(node).unwrap_or_else(|error| format!("# cannot write YAML: {error}\n"))
}
