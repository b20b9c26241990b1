//! The order of the status page's tubes: by any column (`?sort=ready`,
//! `&order=asc`), the busiest first by default. Only the first
//! [`MAX_TUBE_ROWS`](super::status::MAX_TUBE_ROWS) are shown, so the order
//! is the server's, over every tube, not the browser's over the rows it
//! was sent.

use std::cmp::Ordering;

use crate::engine::TubeView;

use super::text::query_param;

/// A column to sort by, as `?sort=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Column {
    /// Jobs held (ready, reserved, delayed, buried) plus jobs that moved
    /// (put, reserved, deleted) in the last minute.
    #[default]
    Busy,
    Name,
    Ready,
    Reserved,
    Delayed,
    Buried,
    Waiting,
    /// Pause time left.
    Paused,
    /// Age of the oldest ready job.
    Oldest,
    /// Jobs put since the tube was made.
    Puts,
    PutRate,
    ReserveRate,
    DeleteRate,
}

/// Every column and its name in the query and in /status.json.
pub const COLUMNS: [(Column, &str); 13] = [
    (Column::Busy, "busy"),
    (Column::Name, "name"),
    (Column::Ready, "ready"),
    (Column::Reserved, "reserved"),
    (Column::Delayed, "delayed"),
    (Column::Buried, "buried"),
    (Column::Waiting, "waiting"),
    (Column::Paused, "paused"),
    (Column::Oldest, "oldest"),
    (Column::Puts, "puts"),
    (Column::PutRate, "put_rate"),
    (Column::ReserveRate, "reserve_rate"),
    (Column::DeleteRate, "delete_rate"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Order {
    pub by: Column,
    pub ascending: bool,
}

impl Column {
    pub fn name(self) -> &'static str {
        COLUMNS
            .iter()
            .find(|(c, _)| *c == self)
            .map_or("busy", |(_, n)| n)
    }

    /// Names read A to Z; every figure largest first.
    fn ascending_first(self) -> bool {
        self == Column::Name
    }
}

impl Order {
    /// From `?sort=COLUMN&order=asc|desc`; an unknown column is the
    /// default, so an old bookmark still shows a page.
    pub fn from_query(query: &str) -> Order {
        let by = query_param(query, "sort")
            .and_then(|s| COLUMNS.iter().find(|(_, n)| *n == s).map(|(c, _)| *c))
            .unwrap_or_default();
        let ascending = match query_param(query, "order").as_deref() {
            Some("asc") => true,
            Some("desc") => false,
            _ => by.ascending_first(),
        };
        Order { by, ascending }
    }

    /// The order a click on `column`'s heading asks for: the other way
    /// round if it is this one, else that column's natural way.
    pub fn toggled(self, column: Column) -> Order {
        Order {
            by: column,
            ascending: if column == self.by {
                !self.ascending
            } else {
                column.ascending_first()
            },
        }
    }

    /// A tube's figure in this order (with its put, reserve and delete
    /// rates); by name, 0 (names are compared apart).
    pub fn key(self, t: &TubeView, r: &[f64; 3]) -> f64 {
        match self.by {
            Column::Busy => {
                let held = t.ready + t.reserved + t.delayed + t.buried;
                held as f64 + 60.0 * (r[0] + r[1] + r[2])
            }
            Column::Name => 0.0,
            Column::Ready => t.ready as f64,
            Column::Reserved => t.reserved as f64,
            Column::Delayed => t.delayed as f64,
            Column::Buried => t.buried as f64,
            Column::Waiting => t.waiting as f64,
            Column::Paused => t.pause_left as f64,
            Column::Oldest => t.oldest_ready_age.map_or(-1.0, |a| a as f64),
            Column::Puts => t.total_jobs as f64,
            Column::PutRate => r[0],
            Column::ReserveRate => r[1],
            Column::DeleteRate => r[2],
        }
    }

    /// Compares two tubes by (key, name); ties go by name, A to Z.
    pub fn compare(self, a: (f64, &str), b: (f64, &str)) -> Ordering {
        let by = if self.by == Column::Name {
            a.1.cmp(b.1)
        } else {
            a.0.total_cmp(&b.0)
        };
        let by = if self.ascending { by } else { by.reverse() };
        by.then_with(|| a.1.cmp(b.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_and_toggles() {
        assert_eq!(Order::from_query(""), Order::default());
        assert_eq!(
            Order::from_query("sort=name"),
            Order {
                by: Column::Name,
                ascending: true
            }
        );
        let o = Order::from_query("tube=x&sort=put_rate&order=asc");
        assert_eq!((o.by, o.ascending), (Column::PutRate, true));
        assert_eq!(Order::from_query("sort=nonsense").by, Column::Busy);
        assert!(!o.toggled(Column::PutRate).ascending);
        assert!(!o.toggled(Column::Ready).ascending);
        for (c, n) in COLUMNS {
            assert_eq!(c.name(), n);
        }
    }
}
