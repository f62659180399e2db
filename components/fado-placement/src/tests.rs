use super::*;
use proptest::prelude::*;

fn zones(z: &[&str]) -> Vec<String> {
    z.iter().map(|s| s.to_string()).collect()
}

/// The thesis testbed: hpc (germany, high-performance), cloud-1 (germany,
/// high-performance), cloud-2 (germany); one storage (ids 11, 12, 13) and
/// one FaaS deployment (21, 22, 23) each.
fn testbed(target: u32, allowed: &[&str], replicas: Vec<ExistingReplica>) -> Snapshot {
    Snapshot {
        clusters: vec![
            Cluster {
                id: 1,
                name: "hpc-cluster".into(),
                zones: zones(&["germany", "high-performance"]),
            },
            Cluster {
                id: 2,
                name: "cloud-cluster-1".into(),
                zones: zones(&["germany", "high-performance"]),
            },
            Cluster {
                id: 3,
                name: "cloud-cluster-2".into(),
                zones: zones(&["germany"]),
            },
        ],
        storage: (1..=3)
            .map(|c| Storage {
                id: 10 + c,
                cluster_id: c,
                healthy: true,
            })
            .collect(),
        faas: (1..=3)
            .map(|c| Faas {
                id: 20 + c,
                cluster_id: c,
            })
            .collect(),
        buckets: vec![Bucket {
            id: 100,
            name: "rep-policy-demo".into(),
            master_storage_id: 11,
            allowed_zones: zones(allowed),
            target_replicas: target,
            replica_override: None,
            route_override: None,
            replicas,
        }],
        default_policy: "round_robin".into(),
    }
}

fn ready(ids: &[i64]) -> Vec<ExistingReplica> {
    ids.iter()
        .map(|&storage_id| ExistingReplica {
            storage_id,
            state: ReplicaState::Ready,
        })
        .collect()
}

#[test]
fn thesis_scenario() {
    // Target 0: the master only, routed to hpc.
    let s = testbed(0, &["germany"], vec![]);
    assert_eq!(plan(&s)[0].desired, Vec::<i64>::new());
    assert_eq!(routes(&s).routes["rep-policy-demo"].faas_ids, vec![21]);

    // Target 2: replicas on both cloud clusters, routed only once ready.
    let s = testbed(2, &["germany"], vec![]);
    let p = plan(&s);
    assert_eq!(p[0].desired, vec![12, 13]);
    assert_eq!(actions(&s.buckets[0], &p[0]).create, vec![12, 13]);
    let pending = vec![
        ExistingReplica {
            storage_id: 12,
            state: ReplicaState::Pending,
        },
        ExistingReplica {
            storage_id: 13,
            state: ReplicaState::Syncing,
        },
    ];
    assert_eq!(
        routes(&testbed(2, &["germany"], pending)).routes["rep-policy-demo"].faas_ids,
        vec![21]
    );
    let s = testbed(2, &["germany"], ready(&[12, 13]));
    assert_eq!(
        routes(&s).routes["rep-policy-demo"].faas_ids,
        vec![21, 22, 23]
    );

    // Narrowed to high-performance: only the cloud-2 replica goes.
    let s = testbed(2, &["high-performance"], ready(&[12, 13]));
    let p = plan(&s);
    assert_eq!(p[0].desired, vec![12]);
    assert_eq!(p[0].shortfall, 1, "cloud-2 was the only other place");
    assert_eq!(
        actions(&s.buckets[0], &p[0]),
        Actions {
            create: vec![],
            delete: vec![13]
        }
    );
    let mut after = s.clone();
    after.buckets[0].replicas[1].state = ReplicaState::Deleting;
    assert_eq!(
        routes(&after).routes["rep-policy-demo"].faas_ids,
        vec![21, 22]
    );
}

#[test]
fn overrides_win_but_not_over_zones() {
    let mut s = testbed(0, &["high-performance"], vec![]);
    s.buckets[0].replica_override = Some(vec![13, 12, 11, 99]);
    let p = &plan(&s)[0];
    assert_eq!(p.desired, vec![12]);
    assert_eq!(p.shortfall, 3);
    assert_eq!(p.notes.len(), 3);
    assert_eq!(check_replica_override(&s, &s.buckets[0], &[12]), Ok(()));
    assert_eq!(
        check_replica_override(&s, &s.buckets[0], &[13]),
        Err(OverrideError::OutsideZones(13))
    );
    assert_eq!(
        check_replica_override(&s, &s.buckets[0], &[11]),
        Err(OverrideError::IsMaster(11))
    );
    assert_eq!(
        check_replica_override(&s, &s.buckets[0], &[12, 12]),
        Err(OverrideError::Duplicate(12))
    );
    assert_eq!(
        check_replica_override(&s, &s.buckets[0], &[7]),
        Err(OverrideError::UnknownStorage(7))
    );
}

#[test]
fn route_overrides_win() {
    let mut s = testbed(2, &[], ready(&[12, 13]));
    s.buckets[0].route_override = Some(RouteOverride {
        faas_ids: vec![23, 99, 23],
        policy: Some("least_conn".into()),
    });
    let r = &routes(&s).routes["rep-policy-demo"];
    assert_eq!(
        (r.faas_ids.clone(), r.policy.as_str(), r.overridden),
        (vec![23], "least_conn", true)
    );
}

#[test]
fn unhealthy_storage_gets_no_new_replicas_but_keeps_old_ones() {
    let mut s = testbed(2, &[], ready(&[13]));
    s.storage[2].healthy = false; // 13
    s.storage[1].healthy = false; // 12
    let p = &plan(&s)[0];
    assert_eq!(
        p.desired,
        vec![13],
        "the existing replica on unhealthy 13 stays"
    );
    assert_eq!(p.shortfall, 1, "12 is unhealthy: no new replica there");
}

#[test]
fn new_replicas_prefer_new_clusters_then_new_zones() {
    // Master on cluster 1; cluster 1 has a second storage (14). Cluster 2
    // and 3 are new clusters; cluster 3 also brings no new zone.
    let mut s = testbed(1, &[], vec![]);
    s.storage.push(Storage {
        id: 14,
        cluster_id: 1,
        healthy: true,
    });
    s.clusters[2].zones = zones(&["germany", "edge"]);
    let p = &plan(&s)[0];
    assert_eq!(
        p.desired,
        vec![13],
        "a new cluster that adds a new zone wins"
    );
    s.buckets[0].target_replicas = 3;
    assert_eq!(
        plan(&s)[0].desired,
        vec![12, 13, 14],
        "the master's cluster comes last"
    );
}

#[test]
fn deleting_replicas_are_a_last_resort() {
    let mut replicas = ready(&[]);
    replicas.push(ExistingReplica {
        storage_id: 13,
        state: ReplicaState::Deleting,
    });
    let s = testbed(1, &[], replicas.clone());
    assert_eq!(plan(&s)[0].desired, vec![12], "another place is preferred");
    let s = testbed(2, &[], replicas);
    let p = &plan(&s)[0];
    assert_eq!(p.desired, vec![12, 13]);
    assert_eq!(
        actions(&s.buckets[0], p).create,
        vec![12, 13],
        "13 is wanted again"
    );
}

#[test]
fn input_order_does_not_matter() {
    let mut s = testbed(2, &[], vec![]);
    let a = (plan(&s), routes(&s));
    s.storage.reverse();
    s.clusters.reverse();
    s.faas.reverse();
    assert_eq!(a, (plan(&s), routes(&s)));
}

// ---- properties -------------------------------------------------------------

const ZONES: &[&str] = &["eu", "de", "fr", "hpc", "edge"];

fn arb_snapshot() -> impl Strategy<Value = Snapshot> {
    let clusters = prop::collection::vec(prop::sample::subsequence(ZONES.to_vec(), 0..=3), 1..6);
    (
        clusters,
        prop::collection::vec((0usize..6, any::<bool>()), 1..10),
        1usize..8,
    )
        .prop_flat_map(|(cluster_zones, storage_spec, n_buckets)| {
            let n_clusters = cluster_zones.len();
            let clusters: Vec<Cluster> = cluster_zones
                .into_iter()
                .enumerate()
                .map(|(i, z)| Cluster {
                    id: i as i64 + 1,
                    name: format!("c{i}"),
                    zones: zones(&z),
                })
                .collect();
            let storage: Vec<Storage> = storage_spec
                .into_iter()
                .enumerate()
                .map(|(i, (c, healthy))| Storage {
                    id: i as i64 + 10,
                    cluster_id: (c % n_clusters) as i64 + 1,
                    healthy: healthy || i == 0,
                })
                .collect();
            let faas: Vec<Faas> = clusters
                .iter()
                .map(|c| Faas {
                    id: c.id + 100,
                    cluster_id: c.id,
                })
                .collect();
            let storage_ids: Vec<i64> = storage.iter().map(|s| s.id).collect();
            let most = storage_ids.len().min(3);
            let bucket = (
                prop::sample::select(storage_ids.clone()),
                prop::sample::subsequence(ZONES.to_vec(), 0..=2),
                0u32..5,
                prop::option::weighted(
                    0.2,
                    prop::sample::subsequence(storage_ids.clone(), 0..=most),
                ),
                prop::sample::subsequence(storage_ids.clone(), 0..=most),
                prop::collection::vec(0u8..5, 4),
            );
            (
                Just((clusters, storage, faas)),
                prop::collection::vec(bucket, n_buckets),
            )
        })
        .prop_map(|((clusters, storage, faas), buckets)| {
            let buckets = buckets
                .into_iter()
                .enumerate()
                .map(
                    |(i, (master, allowed, target, replica_override, existing, states))| Bucket {
                        id: i as i64 + 1000,
                        name: format!("bucket-{i}"),
                        master_storage_id: master,
                        allowed_zones: zones(&allowed),
                        target_replicas: target,
                        replica_override,
                        route_override: None,
                        replicas: existing
                            .into_iter()
                            .filter(|s| *s != master)
                            .zip(states)
                            .map(|(storage_id, st)| ExistingReplica {
                                storage_id,
                                state: [
                                    ReplicaState::Pending,
                                    ReplicaState::Syncing,
                                    ReplicaState::Ready,
                                    ReplicaState::Deleting,
                                    ReplicaState::Failed,
                                ][st as usize],
                            })
                            .collect(),
                    },
                )
                .collect();
            Snapshot {
                clusters,
                storage,
                faas,
                buckets,
                default_policy: "round_robin".into(),
            }
        })
}

/// The snapshot after every bucket reached its plan (all replicas ready).
fn settled(s: &Snapshot) -> Snapshot {
    let mut out = s.clone();
    for (b, p) in out.buckets.iter_mut().zip(plan(s)) {
        b.replicas = ready(&p.desired);
    }
    out
}

fn zone_ok(s: &Snapshot, b: &Bucket, storage_id: i64) -> bool {
    let st = s.storage.iter().find(|x| x.id == storage_id).unwrap();
    let c = s.clusters.iter().find(|c| c.id == st.cluster_id).unwrap();
    b.allowed_zones.is_empty() || c.zones.iter().any(|z| b.allowed_zones.contains(z))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn zone_limits_counts_and_uniqueness_hold(s in arb_snapshot()) {
        for (b, p) in s.buckets.iter().zip(plan(&s)) {
            let limit = match &b.replica_override { Some(o) => o.len(), None => b.target_replicas as usize };
            prop_assert!(p.desired.len() <= limit);
            prop_assert!(!p.desired.contains(&b.master_storage_id));
            let unique: BTreeSet<_> = p.desired.iter().collect();
            prop_assert_eq!(unique.len(), p.desired.len());
            for id in &p.desired {
                prop_assert!(zone_ok(&s, b, *id), "bucket {} replica on {} outside {:?}", b.name, id, b.allowed_zones);
            }
            prop_assert_eq!(p.desired.len() + p.shortfall as usize, limit);
        }
    }

    #[test]
    fn no_new_replica_on_unhealthy_storage(s in arb_snapshot()) {
        for (b, p) in s.buckets.iter().zip(plan(&s)) {
            if b.replica_override.is_some() { continue; }
            for id in actions(b, &p).create {
                let st = s.storage.iter().find(|x| x.id == id).unwrap();
                prop_assert!(st.healthy, "new replica of {} on unhealthy storage {}", b.name, id);
            }
        }
    }

    #[test]
    fn an_unchanged_snapshot_changes_nothing(s in arb_snapshot()) {
        let stable = settled(&s);
        for (b, p) in stable.buckets.iter().zip(plan(&stable)) {
            let a = actions(b, &p);
            prop_assert!(a.create.is_empty() && a.delete.is_empty(), "{}: {:?}", b.name, a);
        }
        prop_assert_eq!(plan(&stable), plan(&settled(&stable)));
    }

    #[test]
    fn changing_one_target_moves_the_minimum(s in arb_snapshot(), which in any::<prop::sample::Index>(), delta in -3i32..=3) {
        let stable = settled(&s);
        let i = which.index(stable.buckets.len());
        if stable.buckets[i].replica_override.is_some() { return Ok(()); }
        let mut changed = stable.clone();
        let old = changed.buckets[i].target_replicas as i32;
        let new = (old + delta).max(0);
        changed.buckets[i].target_replicas = new as u32;
        for (j, (b, p)) in changed.buckets.iter().zip(plan(&changed)).enumerate() {
            let a = actions(b, &p);
            let current = b.replicas.len() as i32;
            if j != i {
                prop_assert!(a.create.is_empty() && a.delete.is_empty(), "an unrelated bucket moved");
            } else if new >= old {
                prop_assert!(a.delete.is_empty());
                prop_assert!(a.create.len() as i32 <= new - old);
            } else {
                prop_assert!(a.create.is_empty());
                prop_assert_eq!(a.delete.len() as i32, (current - new).max(0));
            }
        }
    }

    #[test]
    fn narrowing_zones_removes_only_what_leaves_them(s in arb_snapshot(), which in any::<prop::sample::Index>(), keep in prop::sample::subsequence(ZONES.to_vec(), 1..=2)) {
        let stable = settled(&s);
        let i = which.index(stable.buckets.len());
        let b = &stable.buckets[i];
        // Narrowing: the new zones are a subset of the old ones (any set
        // narrows "anywhere").
        let narrowed: Vec<String> = zones(&keep)
            .into_iter()
            .filter(|z| b.allowed_zones.is_empty() || b.allowed_zones.contains(z))
            .collect();
        if narrowed.is_empty() || b.replica_override.is_some() {
            return Ok(());
        }
        let mut changed = stable.clone();
        changed.buckets[i].allowed_zones = narrowed;
        let nb = &changed.buckets[i];
        let p = plan(&changed).into_iter().find(|p| p.bucket_id == nb.id).unwrap();
        let a = actions(nb, &p);
        for id in &a.delete {
            prop_assert!(!zone_ok(&changed, nb, *id), "replica {} removed although inside the new zones", id);
        }
        let outside = nb.replicas.iter().filter(|r| !zone_ok(&changed, nb, r.storage_id)).count();
        prop_assert_eq!(a.delete.len(), outside);
        prop_assert!(a.create.len() <= a.delete.len());
    }
}
