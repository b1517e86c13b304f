//! Property tests of the pure parts: version order, grubenv round trips,
//! the resume bitmap, chunk ranges, maintenance windows.

use proptest::prelude::*;
use std::collections::BTreeMap;
use updater::boot::grub::{parse_env, render_env};
use updater::target::{ImageMeta, UpdateTarget, Version};

proptest! {
    #[test]
    fn version_order_is_total_and_ignores_trailing_zeros(a in proptest::collection::vec(0u64..50, 1..5),
                                                        b in proptest::collection::vec(0u64..50, 1..5)) {
        let s = |v: &Vec<u64>| v.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(".");
        let (va, vb) = (Version::parse(&s(&a)).unwrap(), Version::parse(&s(&b)).unwrap());
        prop_assert_eq!(va.cmp(&vb), vb.cmp(&va).reverse());
        let mut padded = a.clone();
        padded.push(0);
        prop_assert_eq!(Version::parse(&s(&padded)).unwrap(), va.clone());
        prop_assert_eq!(Version::parse(&va.to_string()).unwrap(), va);
    }

    #[test]
    fn grubenv_round_trips(vars in proptest::collection::btree_map("[A-Z][A-Z_]{0,8}", "[A-Za-z0-9 ]{0,12}", 0..12)) {
        let vars: BTreeMap<String, String> = vars;
        let bytes = render_env(&vars).unwrap();
        prop_assert_eq!(bytes.len(), 1024);
        let back = parse_env(&bytes, std::path::Path::new("grubenv")).unwrap();
        prop_assert_eq!(back, vars);
    }

    #[test]
    fn chunk_ranges_tile_the_image(len in 1u64..200_000, chunk_pages in 1u64..8) {
        let chunk = chunk_pages * 4096;
        let n = len.div_ceil(chunk) as usize;
        let t = UpdateTarget::from_meta("t.img", len, [0; 32], ImageMeta {
            version: "1".into(), epoch: 0, chunk_size: chunk,
            chunks: vec!["00".repeat(32); n], recall: false,
            published: jiff::Timestamp::UNIX_EPOCH, waves: vec![],
        }).unwrap();
        let mut next = 0;
        for i in 0..n {
            let (off, l) = t.chunk_range(i);
            prop_assert_eq!(off, next);
            prop_assert!(l > 0 && l <= chunk);
            next = off + l;
        }
        prop_assert_eq!(next, len);
    }

    #[test]
    fn windows_contain_exactly_their_minutes(s in 0u16..1440, e in 0u16..1440, m in 0u16..1440) {
        let w = updater::config::Window::parse(&format!("{:02}:{:02}-{:02}:{:02}", s / 60, s % 60, e / 60, e % 60)).unwrap();
        let inside = if s <= e { m >= s && m < e } else { m >= s || m < e };
        prop_assert_eq!(w.contains(m), inside);
    }
}
