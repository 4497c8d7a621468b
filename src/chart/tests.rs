//! Scales, ticks and labels to exact values; the SVG's structure: marks, gaps, the SOTA ring, legend.

use super::*;

fn ticks(lo: f64, hi: f64, target: usize) -> Vec<f64> {
    nice_ticks(lo, hi, target, false).values
}

#[test]
fn ticks_use_1_2_5_steps_and_exact_decimals() {
    assert_eq!(ticks(0.012, 0.087, 5), [0.0, 0.02, 0.04, 0.06, 0.08, 0.1]);
    assert_eq!(ticks(0.0, 1.0, 5), [0.0, 0.5, 1.0]);
    assert_eq!(ticks(-0.31, 0.07, 5), [-0.4, -0.3, -0.2, -0.1, 0.0, 0.1]);
    assert_eq!(ticks(3.0, 97.0, 5), [0.0, 50.0, 100.0]);
    assert_eq!(ticks(0.0, 0.3, 4), [0.0, 0.1, 0.2, 0.3]);
    assert_eq!(
        ticks(1234.0, 1301.0, 5),
        [1220.0, 1240.0, 1260.0, 1280.0, 1300.0, 1320.0]
    );
    let t = nice_ticks(-0.0842, -0.0213, 5, false);
    assert_eq!(t.values, [-0.1, -0.08, -0.06, -0.04, -0.02]);
    assert_eq!((t.lo, t.hi, t.step, t.exponent), (-0.1, -0.02, 0.02, -2));
}

#[test]
fn ticks_on_a_tick_do_not_add_a_step() {
    assert_eq!(ticks(0.0, 0.08, 5), [0.0, 0.02, 0.04, 0.06, 0.08]);
    assert_eq!(ticks(0.2, 0.6, 5), [0.2, 0.3, 0.4, 0.5, 0.6]);
}

#[test]
fn integer_ticks_are_whole_and_cover_100_loops() {
    assert_eq!(
        nice_ticks(0.0, 99.0, 8, true).values,
        [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]
    );
    assert_eq!(nice_ticks(0.0, 2.0, 8, true).values, [0.0, 1.0, 2.0]);
    assert_eq!(nice_ticks(5.0, 5.0, 8, true).values, [4.0, 5.0, 6.0]);
}

#[test]
fn degenerate_ranges_are_widened_not_divided_by_zero() {
    assert_eq!(ticks(0.05, 0.05, 5), [0.045, 0.05, 0.055]);
    assert_eq!(ticks(0.0, 0.0, 5), [-1.0, -0.5, 0.0, 0.5, 1.0]);
    assert_eq!(ticks(f64::NAN, 1.0, 5), [0.0, 0.5, 1.0]);
    assert_eq!(ticks(2.0, 1.0, 5), [1.0, 1.5, 2.0]);
    let huge = nice_ticks(-f64::MAX, f64::MAX, 5, false);
    assert_eq!(huge.values, [-f64::MAX, f64::MAX]);
}

#[test]
fn labels_have_just_enough_decimals_and_units() {
    let t = nice_ticks(-0.0842, -0.0213, 5, false);
    let labels: Vec<String> = t
        .values
        .iter()
        .map(|v| Format::Percent.tick(*v, &t))
        .collect();
    assert_eq!(labels, ["−10%", "−8%", "−6%", "−4%", "−2%"]);
    let t = nice_ticks(0.0, 0.0079, 5, false);
    let labels: Vec<String> = t
        .values
        .iter()
        .map(|v| Format::Percent.tick(*v, &t))
        .collect();
    assert_eq!(labels, ["0.0%", "0.2%", "0.4%", "0.6%", "0.8%"]);
    let t = nice_ticks(-0.031, 0.049, 5, false);
    let labels: Vec<String> = t
        .values
        .iter()
        .map(|v| Format::Decimal.tick(*v, &t))
        .collect();
    assert_eq!(labels, ["−0.04", "−0.02", "0.00", "0.02", "0.04", "0.06"]);
    assert_eq!(Format::Decimal.value(-0.00001), "0.0000");
    assert_eq!(Format::Percent.value(0.12345), "12.35%");
    assert_eq!(Format::Decimal.value(f64::NAN), "n/a");
    assert_eq!(Format::Integer.value(42.0), "42");
}

#[test]
fn scale_maps_linearly_and_survives_empty_domains() {
    let s = Scale {
        domain: (0.0, 0.1),
        range: (300.0, 100.0),
    };
    assert_eq!(s.map(0.0), 300.0);
    assert_eq!(s.map(0.05), 200.0);
    assert_eq!(s.map(0.1), 100.0);
    let flat = Scale {
        domain: (1.0, 1.0),
        range: (0.0, 10.0),
    };
    assert_eq!(flat.map(1.0), 5.0);
    let huge = Scale {
        domain: (-f64::MAX, f64::MAX),
        range: (0.0, 10.0),
    };
    assert_eq!(huge.map(0.0), 5.0);
}

fn chart(points: &[Option<f64>], kinds: &[MarkKind]) -> Chart {
    Chart {
        title: "IC per loop".into(),
        x_title: "loop".into(),
        y_title: "IC".into(),
        x_format: Format::Integer,
        y_format: Format::Decimal,
        lines: vec![Line {
            name: "IC".into(),
            stroke: Stroke::Metric,
            step: false,
            points: points
                .iter()
                .enumerate()
                .map(|(i, y)| (i as f64, *y))
                .collect(),
        }],
        marks: points
            .iter()
            .zip(kinds)
            .enumerate()
            .map(|(i, (y, k))| Mark {
                x: i as f64,
                y: *y,
                kind: *k,
                title: format!("loop {i}"),
            })
            .collect(),
        highlight: None,
    }
}

fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The numbers of the `name="..."` attributes of the first element after `marker`.
fn attr_after(svg: &str, marker: &str, name: &str) -> f64 {
    let rest = &svg[svg.find(marker).expect(marker)..];
    let key = format!(" {name}=\"");
    let start = rest.find(&key).expect(name) + key.len();
    rest[start..start + rest[start..].find('"').unwrap()]
        .parse()
        .unwrap()
}

use MarkKind::{Accepted as A, Failed as F, Rejected as R};

#[test]
fn gaps_break_the_line_and_missing_marks_go_to_the_strip() {
    let c = chart(
        &[
            Some(0.01),
            Some(0.02),
            None,
            Some(0.03),
            Some(f64::NAN),
            Some(0.05),
        ],
        &[A, R, F, A, F, A],
    );
    let svg = c.svg();
    let d_start = svg.find(r#"class="line metric" d=""#).unwrap();
    let d = &svg[d_start..d_start + svg[d_start..].find("/>").unwrap()];
    // Three runs: loops 0-1, loop 3 alone, loop 5 alone.
    assert_eq!(count(d, "M"), 3, "{svg}");
    assert_eq!(count(d, "L"), 1, "{d}");
    assert_eq!(count(&svg, r#"<g class="mark accepted">"#), 3);
    assert_eq!(count(&svg, r#"<g class="mark rejected">"#), 1);
    assert_eq!(count(&svg, r#"<g class="mark failed missing">"#), 2);
    assert_eq!(count(&svg, "no result</text>"), 1);
    // The failed marks sit below the x axis, never at a value.
    let axis_y = attr_after(&svg, r#"<line class="domain""#, "y1");
    let failed = &svg[svg.find("mark failed missing").unwrap()..];
    let d = &failed[failed.find("d=\"M").unwrap() + 4..];
    let y: f64 = d.split(['L', ' ']).nth(1).unwrap().parse().unwrap();
    assert!(y > axis_y, "failed mark at y={y}, axis at {axis_y}");
}

#[test]
fn sota_ring_is_at_the_points_coordinates() {
    let mut c = chart(&[Some(0.0), Some(0.05), Some(0.1)], &[A, A, R]);
    c.highlight = Some(Highlight {
        x: 1.0,
        y: 0.05,
        label: "SOTA".into(),
        title: "loop 1".into(),
    });
    let l = c.layout();
    // One legend row: plot from y=8+20+18=46 to 246; x domain -0.5..2.5 over 64..620.
    assert_eq!(
        (l.y.range, l.x.domain, l.x.range),
        ((246.0, 46.0), (-0.5, 2.5), (64.0, 620.0))
    );
    assert_eq!(l.y_ticks.values, [0.0, 0.05, 0.1]);
    let svg = c.svg();
    assert_eq!(attr_after(&svg, r#"<g class="sota">"#, "cx"), 342.0);
    assert_eq!(attr_after(&svg, r#"<g class="sota">"#, "cy"), 146.0);
    assert_eq!(
        attr_after(&svg, r#"<g class="mark accepted"><title>loop 1"#, "cx"),
        342.0
    );
    assert_eq!(
        count(&svg, r#"<circle class="ring""#),
        2,
        "the ring and its legend swatch"
    );
}

#[test]
fn step_lines_hold_their_value_until_the_next_point() {
    let c = Chart {
        lines: vec![Line {
            name: "SOTA so far".into(),
            stroke: Stroke::Best,
            step: true,
            points: vec![
                (0.0, Some(0.0)),
                (1.0, Some(0.1)),
                (2.0, None),
                (3.0, Some(0.1)),
            ],
        }],
        marks: vec![],
        ..chart(&[], &[])
    };
    let svg = c.svg();
    assert!(
        svg.contains(r#"class="line best step" d="M133.5 246H272.5V46M550.5 46""#),
        "{svg}"
    );
}

#[test]
fn degenerate_data_renders_without_panicking_or_nan() {
    let cases: Vec<Vec<Option<f64>>> = vec![
        vec![],
        vec![Some(0.07)],
        vec![Some(0.03); 5],
        vec![None, None, None],
        vec![Some(f64::NAN), Some(f64::INFINITY), Some(f64::NEG_INFINITY)],
        vec![Some(f64::MAX), Some(-f64::MAX)],
        vec![Some(0.0), Some(1e-300)],
    ];
    for points in cases {
        let kinds = vec![A; points.len()];
        let svg = chart(&points, &kinds).svg();
        assert!(
            !svg.contains("NaN") && !svg.contains("inf"),
            "{points:?}: {svg}"
        );
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
        assert_eq!(
            count(&svg, "<g class=\"mark accepted"),
            points.len() + usize::from(!points.is_empty())
        );
        assert_eq!(
            count(&svg, "<g class=\"mark accepted key\">"),
            usize::from(!points.is_empty())
        );
        let finite = points.iter().any(|p| p.is_some_and(f64::is_finite));
        assert_eq!(svg.contains("no results to plot"), !finite, "{points:?}");
    }
}

#[test]
fn marks_shrink_when_loops_crowd() {
    let x = Scale {
        domain: (0.0, 1.0),
        range: (64.0, 620.0),
    };
    assert_eq!(mark_radius(&x, 10), 4.0);
    assert_eq!(mark_radius(&x, 100), 556.0 / 100.0 * 0.55);
    assert_eq!(mark_radius(&x, 1000), 2.5);
    assert_eq!(mark_radius(&x, 0), 4.0);
}

#[test]
fn awkward_ranges_give_finite_ordered_ticks_or_no_panic() {
    let values = [
        0.0,
        1e-300,
        -1e-300,
        1e-10,
        -1e-10,
        1.0,
        -1.0,
        1e10,
        -1e10,
        1e300,
        -1e300,
        f64::MAX,
        -f64::MAX,
        f64::MIN_POSITIVE,
        0.1,
        0.3,
    ];
    for &lo in &values {
        for &hi in &values {
            let t = nice_ticks(lo, hi, 5, false);
            assert!(
                t.values.len() >= 2 && t.values.len() <= 12,
                "{lo} {hi}: {t:?}"
            );
            assert!(t.values.windows(2).all(|w| w[0] < w[1]), "{lo} {hi}: {t:?}");
            if t.values.iter().all(|v| v.is_finite()) {
                // Enclosing, up to the float-noise tolerance of a billionth of a step.
                let slack = t.step * 1e-9;
                assert!(
                    t.lo <= lo.min(hi) + slack && t.hi >= lo.max(hi) - slack,
                    "{lo} {hi}: {t:?}"
                );
            }
            let svg = chart(&[Some(lo), Some(hi)], &[A, R]).svg();
            assert!(!svg.contains("NaN") && !svg.contains("inf"), "{lo} {hi}");
        }
    }
}

#[test]
fn all_equal_values_sit_mid_plot() {
    let c = chart(&[Some(0.03); 4], &[A; 4]);
    let l = c.layout();
    let y = l.y.map(0.03);
    assert!(y > l.y.range.1 && y < l.y.range.0);
}

#[test]
fn caller_text_is_escaped_everywhere() {
    let mut c = chart(&[Some(0.1)], &[A]);
    c.title = "<b>t</b>\"".into();
    c.y_title = "<y>".into();
    c.marks[0].title = "<script>alert(1)</script>".into();
    c.lines[0].name = "a&b".into();
    let svg = c.svg();
    assert!(!svg.contains("<script") && !svg.contains("<b>") && !svg.contains("<y>"));
    assert!(svg.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(svg.contains(r#"aria-label="&lt;b&gt;t&lt;/b&gt;&quot;""#));
    assert!(svg.contains(">a&amp;b</text>"));
}

#[test]
fn palette_lines_end_in_a_dot_at_their_last_value() {
    let line = |i: usize, points: Vec<(f64, Option<f64>)>| Line {
        name: format!("run {i}"),
        stroke: Stroke::Palette(i),
        step: true,
        points,
    };
    let c = Chart {
        lines: vec![
            line(0, vec![(0.0, Some(0.0)), (1.0, Some(0.1)), (2.0, None)]),
            line(9, vec![(0.0, None)]),
        ],
        marks: vec![],
        ..chart(&[], &[])
    };
    let svg = c.svg();
    let l = c.layout();
    let dot = format!(
        r#"<circle class="end pal p0" cx="{}" cy="{}" r="3.5"/>"#,
        n(l.x.map(1.0)),
        n(l.y.map(0.1))
    );
    assert!(svg.contains(&dot), "{svg}");
    assert_eq!(
        svg.matches("<circle class=\"end").count(),
        1,
        "no dot for a line without values"
    );
    assert!(
        svg.contains(r#"<path class="line pal p1" d="#),
        "colours cycle after 8"
    );
}

#[test]
fn many_legend_entries_wrap_into_rows_inside_the_width() {
    let lines = (0..8)
        .map(|i| Line {
            name: format!("run 2026-11-{i:02} with a long name that gets shortened"),
            stroke: Stroke::Palette(i),
            step: true,
            points: vec![(0.0, Some(i as f64))],
        })
        .collect();
    let c = Chart {
        lines,
        marks: vec![],
        ..chart(&[], &[])
    };
    let l = c.layout();
    assert!(l.legend_rows >= 4, "{}", l.legend_rows);
    for e in &l.legend {
        assert!(e.label.chars().count() <= LEGEND_LABEL_MAX);
        assert!(
            e.x + 24.0 + e.label.chars().count() as f64 * CHAR_WIDTH <= PLOT_RIGHT + 1.0,
            "{e:?}"
        );
    }
    assert_eq!(
        l.y.range.1,
        LEGEND_TOP + l.legend_rows as f64 * LEGEND_ROW + PLOT_GAP
    );
}
