//! The debug panel (issue 16): a page of the whole backend at `GET /`, its assets under
//! `/panel/`. Every file is compiled into the binary, so the page works with no network and no
//! build step; the client modules are the JavaScript package's own (`clients/js/src`), served
//! as they are, so the page has no second hand-written client.
//!
//! The assets carry no secret and are served without the token: the page gets the token from
//! its URL fragment (`#token=…`, which a browser never sends) and uses it for every API call.
//! The `Host` and `Origin` checks still come first (see `routes`).

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::{
    Response, StatusCode,
    header::{self, HeaderValue},
};

use crate::routes::ResponseBody;

/// The page's policy: its own scripts, styles and API only. No inline script, no `eval`, no
/// frames, no form posts anywhere; `data:` images only for the favicon stand-in.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const JAVASCRIPT: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Every file of the panel: its path, content type and text.
const ASSETS: &[(&str, &str, &str)] = &[
    ("/", HTML, include_str!("../panel/index.html")),
    ("/panel/", HTML, include_str!("../panel/index.html")),
    (
        "/panel/index.html",
        HTML,
        include_str!("../panel/index.html"),
    ),
    (
        "/panel/panel.js",
        JAVASCRIPT,
        include_str!("../panel/panel.js"),
    ),
    ("/panel/panel.css", CSS, include_str!("../panel/panel.css")),
    (
        "/panel/client/index.js",
        JAVASCRIPT,
        include_str!("../../../clients/js/src/index.js"),
    ),
    (
        "/panel/client/sse.js",
        JAVASCRIPT,
        include_str!("../../../clients/js/src/sse.js"),
    ),
    (
        "/panel/client/protocol.js",
        JAVASCRIPT,
        include_str!("../../../clients/js/src/protocol.js"),
    ),
];

/// Whether `path` belongs to the panel (so a request for it is answered here, not refused for
/// lacking a token).
pub(crate) fn is_panel_path(path: &str) -> bool {
    path == "/" || path.starts_with("/panel/")
}

/// The asset at `path`, or a 404 naming the panel's address.
pub(crate) fn asset(path: &str) -> Result<Response<ResponseBody>, (StatusCode, String)> {
    let Some((_, content_type, text)) = ASSETS.iter().find(|(p, _, _)| *p == path) else {
        return Err((
            StatusCode::NOT_FOUND,
            format!("no such file of the debug panel: {path:?}; the panel is at GET /"),
        ));
    };
    let mut response = Response::new(Either::Left(Full::new(Bytes::from_static(text.as_bytes()))));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // The binary is the only source: a new conductor may serve a new page on the same port.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    *response.status_mut() = StatusCode::OK;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_under_the_panel_prefix_and_has_content() {
        for (path, _, text) in ASSETS {
            assert!(is_panel_path(path), "{path}");
            assert!(!text.trim().is_empty(), "{path} is empty");
        }
        assert!(!is_panel_path("/ipc/app:health"));
        assert!(!is_panel_path("/events"));
        assert!(!is_panel_path("/panelx"));
    }

    #[test]
    fn the_page_loads_only_modules_the_binary_serves() {
        // Every `import … from "…"` and `<script src>` of a served file names a served file,
        // so the page never needs the network (and a renamed module fails here, not in a
        // browser).
        let served: Vec<&str> = ASSETS.iter().map(|(p, _, _)| *p).collect();
        for (path, content_type, text) in ASSETS {
            let base = &path[..=path.rfind('/').unwrap_or(0)];
            let mut references = Vec::new();
            if *content_type == JAVASCRIPT {
                for line in text.lines() {
                    let line = line.trim_start();
                    if (line.starts_with("import ") || line.starts_with("} from "))
                        && let Some(spec) = line.split('"').nth(1)
                    {
                        references.push(spec);
                    }
                }
            } else if *content_type == HTML {
                for piece in text.split(['"', '\'']) {
                    if (piece.starts_with("/panel/") || piece.starts_with("./"))
                        && (piece.ends_with(".js") || piece.ends_with(".css"))
                    {
                        references.push(piece);
                    }
                }
            }
            for reference in references {
                let resolved = if let Some(relative) = reference.strip_prefix("./") {
                    format!("{base}{relative}")
                } else if let Some(relative) = reference.strip_prefix("../") {
                    let parent = &base[..base[..base.len() - 1].rfind('/').unwrap_or(0) + 1];
                    format!("{parent}{relative}")
                } else {
                    reference.to_owned()
                };
                assert!(
                    served.contains(&resolved.as_str()),
                    "{path} refers to {reference} ({resolved}), which is not served"
                );
            }
        }
    }
}
