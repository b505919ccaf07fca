//! The answers to the queries sorted into series per pod.

use std::collections::BTreeMap;

use super::synthetic::T0;
use crate::prometheus::Series;
use crate::story::Observed;
use crate::story::series::{QUERIES, ms};

#[test]
fn series_sort_into_pods() {
    let series = |pod: &str, extra: Option<(&str, &str)>, points: Vec<(f64, f64)>| {
        let mut labels = BTreeMap::from([("pod".to_string(), pod.to_string())]);
        if let Some((k, v)) = extra {
            labels.insert(k.into(), v.into());
        }
        Series { labels, points }
    };
    let mut results = vec![Vec::new(); QUERIES.len()];
    results[1] = vec![series("pod-a", None, vec![(T0, 5.0), (T0 + 1.0, 4.0)])];
    let phases = vec![
        series(
            "pod-a",
            Some(("phase", "serving")),
            vec![(T0, 1.0), (T0 + 1.0, 0.0)],
        ),
        series(
            "pod-a",
            Some(("phase", "prestop")),
            vec![(T0, 0.0), (T0 + 1.0, 1.0)],
        ),
        series("pod-a", Some(("phase", "draining")), vec![(T0 + 1.0, 1.0)]),
    ];
    let sum = vec![Series {
        labels: BTreeMap::new(),
        points: vec![(T0, 5.0)],
    }];
    let o = Observed::from_results(&results, &phases, &sum);
    let a = &o.pods["pod-a"];
    assert_eq!(a.websockets[&ms(T0 + 1.0)], 4.0);
    assert_eq!(a.phase[&ms(T0)], "serving");
    assert_eq!(a.phase[&ms(T0 + 1.0)], "prestop+draining");
    assert_eq!(o.websocket_sum[&ms(T0)], 5.0);
    assert_eq!(a.at(ms(T0)), T0, "no timestamp(): the step's time");
}
