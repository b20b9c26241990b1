//! Which path answers what.

use super::live::Live;
use super::session::{Asked, Reply, Site};
use super::{metrics, page, status};

const JS: &str = include_str!("assets/status.js");
const CSS: &str = include_str!("assets/status.css");
const ICON: &str = include_str!("assets/favicon.svg");

impl Site for Live<'_> {
    fn serve(&mut self, asked: Asked) -> Reply {
        let Asked { path, query, gzip } = asked;
        match path {
            "/" => {
                let filter = self.status_filter(query);
                Reply::new(200, "text/html; charset=utf-8", page::page(self, &filter))
            }
            "/status.json" => {
                let filter = self.status_filter(query);
                Reply::new(200, "application/json", status::json(self, &filter))
            }
            "/metrics" => metrics::render(self, gzip),
            "/status.js" => Reply::new(200, "text/javascript; charset=utf-8", JS),
            "/status.css" => Reply::new(200, "text/css; charset=utf-8", CSS),
            // Browsers ask for /favicon.ico whatever the page says.
            "/favicon.svg" | "/favicon.ico" => Reply::new(200, "image/svg+xml", ICON),
            "/healthz" => Reply::text(200, "ok"),
            "/readyz" if self.engine.is_draining() => Reply::text(503, "draining"),
            "/readyz" if !self.figures.ready => Reply::text(503, "recovering"),
            // Ready for reads, not writes: a load balancer for writers
            // skips it.
            "/readyz" if self.engine.refuses_changes() => {
                let standby = self.engine.replication_view().primary.is_none();
                Reply::text(503, if standby { "standby" } else { "replica" })
            }
            "/readyz" => Reply::text(200, "ready"),
            _ => Reply::text(
                404,
                "no such page; try /, /metrics, /status.json, /healthz or /readyz",
            ),
        }
    }
}

impl Live<'_> {
    /// The page's query, read once; a tube's chart asked for is kept
    /// from now on.
    fn status_filter(&mut self, query: &str) -> status::Filter {
        let filter = status::Filter::from_query(query);
        if let Some(t) = &filter.tube
            && let Some(levels) = self.engine.tube_levels(t)
        {
            self.history.want(self.now, t, levels);
        }
        filter
    }
}
