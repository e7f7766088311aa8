"""Partition selection: which partition a job's resources land on, and with how many nodes."""
import pytest

from expyre.resources import NoMatchingPartitionError, Resources

GB = 1024 ** 2


def part(num_cores, max_time=None, max_mem=None):
    return {"num_cores": num_cores, "max_time": max_time, "max_mem": max_mem, "header": [], "partition": "x"}


CLUSTER = {
    "node16_1,node16_2": part(16, max_mem=60 * GB),
    "node36": part(36, max_mem=180 * GB),
    "node32": part(32, max_mem=180 * GB),
    "node_bigmem": part(56, max_time=48 * 3600, max_mem=1500 * GB),
}

TIMED = {
    "debug": part(40, max_time=3600),
    "standard": part(40, max_time=3 * 86400),
}


def nodes(num_nodes, num_cores, per_node):
    return {"num_nodes": num_nodes, "num_cores": num_cores, "num_cores_per_node": per_node}


# ---------------------------------------------------------------- constructor


def test_attributes():
    r = Resources(max_time="1h", num_cores=32, max_mem_per_core="2GB", partitions="node.*")
    assert r.max_time == 3600
    assert r.n == (32, "cores")
    assert r.max_mem == (2 * GB, "per_core")
    assert r.partitions == ["node.*"]
    r = Resources(max_time=None, num_nodes=2, max_mem_tot=1000, queues=["a", "b"])
    assert r.max_time is None
    assert r.n == (2, "nodes")
    assert r.max_mem == (1000, "tot")
    assert r.partitions == ["a", "b"]
    assert Resources(max_time=60, num_nodes=1).max_mem is None
    assert Resources(max_time=60, num_nodes=1).partitions is None


@pytest.mark.parametrize("kwargs", [
    dict(max_time="1h"),
    dict(max_time="1h", num_nodes=1, num_cores=16),
    dict(max_time="1h", num_nodes=1, max_mem_tot=1, max_mem_per_core=2),
    dict(max_time="1h", num_nodes=1, partitions="a", queues="b"),
    dict(max_time="1h", num_nodes=1.5),
    dict(max_time="1h", num_cores="16"),
    dict(max_time="1h", num_cores=0),
    dict(max_time="1h", num_nodes=True),
    dict(max_time="1 fortnight", num_nodes=1),
    dict(max_time="1h", num_nodes=1, max_mem_tot="lots"),
    dict(max_time="1h", num_nodes=1, partitions="(unclosed"),
    dict(max_time="1h", num_nodes=1, partitions=[3]),
])
def test_bad_requests(kwargs):
    with pytest.raises(ValueError):
        Resources(**kwargs)


def test_repr_shows_request():
    text = repr(Resources(max_time="1h", num_cores=17, partitions="node36"))
    assert "3600" in text and "17" in text and "cores" in text and "node36" in text


# ---------------------------------------------------------------- cores and nodes


def test_cores_exact_fit():
    node16 = "node16_1,node16_2"
    assert Resources(max_time="1h", num_cores=16).find_nodes(CLUSTER) == (node16, nodes(1, 16, 16))
    assert Resources(max_time="1h", num_cores=32).find_nodes(CLUSTER) == (node16, nodes(2, 32, 16))
    assert Resources(max_time="1h", num_cores=36).find_nodes(CLUSTER) == ("node36", nodes(1, 36, 36))


def test_nodes_take_first_partition_and_whole_nodes():
    node16 = "node16_1,node16_2"
    assert Resources(max_time="1h", num_nodes=1).find_nodes(CLUSTER) == (node16, nodes(1, 16, 16))
    assert Resources(max_time="1h", num_nodes=3).find_nodes(CLUSTER) == (node16, nodes(3, 48, 16))


def test_cores_not_exact_rejected_with_reasons():
    with pytest.raises(ValueError) as info:
        Resources(max_time="1h", num_cores=17).find_nodes(CLUSTER)
    message = str(info.value)
    for key in CLUSTER:
        assert key in message
    assert "not a multiple" in message
    assert isinstance(info.value, RuntimeError)  # what the original ExPyRe raised


def test_cores_without_exact_fit_pick_least_excess():
    r = Resources(max_time="1h", num_cores=17)
    # node16: 2 nodes, 15 idle; node36: 19 idle; node32: 15 idle; bigmem: 39 idle -> first of the 15s
    assert r.find_nodes(CLUSTER, exact_fit=False) == ("node16_1,node16_2", nodes(2, 32, 16))
    assert Resources(max_time="1h", num_cores=36).find_nodes(CLUSTER, exact_fit=False) == (
        "node36", nodes(1, 36, 36))
    assert Resources(max_time="1h", num_cores=71).find_nodes(CLUSTER, exact_fit=False) == (
        "node36", nodes(2, 72, 36))
    # node16 and node32 both leave 2 cores idle: the first one listed wins
    assert Resources(max_time="1h", num_cores=30).find_nodes(CLUSTER, exact_fit=False) == (
        "node16_1,node16_2", nodes(2, 32, 16))
    assert Resources(max_time="1h", num_cores=35).find_nodes(CLUSTER, exact_fit=False) == (
        "node36", nodes(1, 36, 36))


def test_first_zero_excess_wins_over_later_ones():
    parts = {"a": part(8), "b": part(4), "c": part(2)}
    assert Resources(max_time=1, num_cores=16).find_nodes(parts) == ("a", nodes(2, 16, 8))
    assert Resources(max_time=1, num_cores=4).find_nodes(parts) == ("b", nodes(1, 4, 4))


# ---------------------------------------------------------------- partial nodes


def test_partial_node_gives_only_requested_cores():
    r = Resources(max_time="1h", num_cores=5, partitions="node36")
    assert r.find_nodes(CLUSTER, partial_node=True) == ("node36", nodes(1, 5, 5))


def test_partial_node_full_node_request():
    r = Resources(max_time="1h", num_nodes=1, partitions="node32")
    assert r.find_nodes(CLUSTER, partial_node=True) == ("node32", nodes(1, 32, 32))


def test_partial_node_more_than_one_node_is_an_error():
    r = Resources(max_time="1h", num_cores=40, partitions="node36")
    with pytest.raises(ValueError, match="one node"):
        r.find_nodes(CLUSTER, partial_node=True)


def test_partial_node_overrides_exact_fit():
    r = Resources(max_time="1h", num_cores=5, partitions="node36")
    with pytest.raises(ValueError):
        r.find_nodes(CLUSTER, exact_fit=True)
    assert r.find_nodes(CLUSTER, exact_fit=True, partial_node=True)[0] == "node36"


# ---------------------------------------------------------------- memory


def test_memory_per_core():
    # 17 GB per core: only bigmem (1500 GB / 56 cores = 26.8 GB per core) has it
    assert Resources(max_time="1h", max_mem_per_core="17gb", num_nodes=1).find_nodes(CLUSTER) == (
        "node_bigmem", nodes(1, 56, 56))


def test_memory_total_scales_with_nodes():
    assert Resources(max_time="1h", max_mem_tot="1tb", num_nodes=1).find_nodes(CLUSTER) == (
        "node_bigmem", nodes(1, 56, 56))
    # 100 GB total on 2 nodes of 60 GB fits the first partition
    assert Resources(max_time="1h", max_mem_tot="100gb", num_nodes=2).find_nodes(CLUSTER)[0] == (
        "node16_1,node16_2")


def test_memory_rejection_reason():
    with pytest.raises(ValueError) as info:
        Resources(max_time="1h", max_mem_tot="2000gb", num_nodes=1).find_nodes(CLUSTER)
    assert "max_mem_tot" in str(info.value)


def test_no_memory_limit_fits_anything():
    parts = {"nomem": part(4, max_mem=None)}
    assert Resources(max_time=1, num_nodes=1, max_mem_tot="100tb").find_nodes(parts)[0] == "nomem"


# ---------------------------------------------------------------- time


def test_time_limits():
    assert Resources(max_time="30m", num_nodes=1).find_nodes(TIMED) == ("debug", nodes(1, 40, 40))
    assert Resources(max_time="00:30", num_nodes=1).find_nodes(TIMED) == ("debug", nodes(1, 40, 40))
    assert Resources(max_time="1h", num_nodes=1).find_nodes(TIMED) == ("debug", nodes(1, 40, 40))
    assert Resources(max_time="1:05:00", num_nodes=2).find_nodes(TIMED) == ("standard", nodes(2, 80, 40))
    assert Resources(max_time="1:05:00", num_cores=80).find_nodes(TIMED) == ("standard", nodes(2, 80, 40))
    assert Resources(max_time="2-1:10:05", num_nodes=1).find_nodes(TIMED) == ("standard", nodes(1, 40, 40))


def test_too_long_for_every_partition():
    with pytest.raises(ValueError) as info:
        Resources(max_time="4d", num_nodes=1).find_nodes(TIMED)
    message = str(info.value)
    assert "debug: max_time 96:00:00 > 1:00:00" in message
    assert "standard: max_time 96:00:00 > 72:00:00" in message


def test_no_time_request_fits_limited_partition():
    assert Resources(max_time=None, num_nodes=1).find_nodes(TIMED)[0] == "debug"


def test_unlimited_partition_fits_long_job():
    assert Resources(max_time="1000d", num_nodes=1).find_nodes(CLUSTER)[0] == "node16_1,node16_2"


# ---------------------------------------------------------------- partition names


@pytest.mark.parametrize("kw", ["partitions", "queues"])
@pytest.mark.parametrize("spec", ["debug", ["debug"], ["standard", "debug"], ["deb.*"], "deb.*"])
def test_partition_regexps(kw, spec):
    # the system's partition order decides among matches, not the order of the regexps
    r = Resources(max_time="30m", num_nodes=1, **{kw: spec})
    assert r.find_nodes(TIMED) == ("debug", nodes(1, 40, 40))


@pytest.mark.parametrize("kw", ["partitions", "queues"])
def test_partition_regexp_must_match_whole_key(kw):
    r = Resources(max_time="30m", num_nodes=1, **{kw: "deb"})
    with pytest.raises(NoMatchingPartitionError) as info:
        r.find_nodes(TIMED)
    assert "debug: name does not match 'deb'" in str(info.value)
    assert "standard: name does not match 'deb'" in str(info.value)


def test_queues_restrict_selection():
    # without a restriction the first partition would win
    assert Resources(max_time="1h", num_nodes=1, queues="node32").find_nodes(CLUSTER)[0] == "node32"
    assert Resources(max_time="1h", num_nodes=1, queues=".*bigmem").find_nodes(CLUSTER) == (
        "node_bigmem", nodes(1, 56, 56))


def test_empty_partitions():
    with pytest.raises(ValueError, match="no partitions"):
        Resources(max_time=1, num_nodes=1).find_nodes({})
