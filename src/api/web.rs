//! The web page: one HTML document, a script and a style sheet, embedded in
//! the binary and served at `/` and `/assets/…` beside the JSON API.
//!
//! The page is plain JavaScript and SVG with no build step and no third-party
//! code, so `cargo build` is all it needs. It only ever talks to the server
//! that served it (the Content-Security-Policy says so to the browser): it
//! polls `/api/graph`, `/api/signals`, `/api/hotspots`, `/api/anomalies`,
//! and — where this build has them — `/api/scenarios` and `/api/experiments`.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

/// One embedded file: its route, media type and contents.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static str,
}

const INDEX: Asset = Asset {
    path: "/",
    content_type: "text/html; charset=utf-8",
    body: include_str!("web/index.html"),
};

const JS: &str = "text/javascript; charset=utf-8";

/// Classic scripts in load order (no modules, so a `file://` test harness
/// can load them too): helpers, the graph, the plots, then the poller.
const ASSETS: [Asset; 6] = [
    Asset {
        path: "/assets/dom.js",
        content_type: JS,
        body: include_str!("web/dom.js"),
    },
    Asset {
        path: "/assets/graph.js",
        content_type: JS,
        body: include_str!("web/graph.js"),
    },
    Asset {
        path: "/assets/plots.js",
        content_type: JS,
        body: include_str!("web/plots.js"),
    },
    Asset {
        path: "/assets/app.js",
        content_type: JS,
        body: include_str!("web/app.js"),
    },
    Asset {
        path: "/assets/style.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("web/style.css"),
    },
    Asset {
        path: "/assets/favicon.svg",
        content_type: "image/svg+xml",
        body: include_str!("web/favicon.svg"),
    },
];

/// Nothing but this origin: no CDN, no font service, no beacon. Inline
/// scripts and style attributes are refused too, so the assets stay the
/// only code the page runs.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The page's routes, to merge into the API router.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new().route(INDEX.path, get(|| async { respond(&INDEX) }));
    for asset in &ASSETS {
        router = router.route(asset.path, get(move || async move { respond(asset) }));
    }
    router
}

fn respond(asset: &'static Asset) -> Response {
    (
        [
            (header::CONTENT_TYPE, asset.content_type),
            // The page is tiny and changes with the binary: always revalidate.
            (header::CACHE_CONTROL, "no-cache"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every URL in the assets that could reach the network (http, https,
    /// ws, wss): only XML namespaces, which are names, not requests.
    #[test]
    fn no_asset_names_another_origin() {
        for asset in ASSETS.iter().chain([&INDEX]) {
            let body = asset.body;
            for (at, _) in body.match_indices("://") {
                let start = body[..at]
                    .rfind(|c: char| !c.is_ascii_alphanumeric())
                    .map_or(0, |i| i + 1);
                let url: String = body[start..]
                    .chars()
                    .take_while(|c| !c.is_whitespace() && !"\"'`)".contains(*c))
                    .collect();
                let network = matches!(&body[start..at], "http" | "https" | "ws" | "wss");
                assert!(
                    !network || url.starts_with("http://www.w3.org/"),
                    "{} names {url}",
                    asset.path
                );
            }
        }
    }

    /// Every `src` and `href` of the page is one of the served assets.
    #[test]
    fn the_page_links_only_served_assets() {
        for attr in ["src=\"", "href=\""] {
            for (at, _) in INDEX.body.match_indices(attr) {
                let link: String = INDEX.body[at + attr.len()..]
                    .chars()
                    .take_while(|c| *c != '"')
                    .collect();
                assert!(
                    ASSETS.iter().any(|a| a.path == link),
                    "index.html links {link}, which is not served"
                );
            }
        }
    }
}
