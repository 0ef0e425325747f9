"""Memory bombs and slow growth end as `memory` (or `timeout`); the host is unaffected."""

import resource

from sandbox import Pair

PUZZLE = "def f(x: int):\n    return x == 3\n"


def _host_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def test_memory_bombs(quick, healthy):
    before = _host_rss_mb()
    bombs = [
        "def g():\n    x = [0] * 10 ** 10\n    return 3\n",
        "def g():\n    return len(bytearray(10 ** 12))\n",
        "def g():\n    x = 'a' * (1 << 40)\n    return 3\n",
        # slow growth: a megabyte at a time until the limit
        "def g():\n    hoard = []\n    while True:\n        hoard.append(' ' * 10 ** 6)\n"
        "    return 3\n",
        # a bomb in the checker
        None,
    ]
    pairs = [Pair(PUZZLE, g) for g in bombs[:-1]]
    pairs.append(Pair("def f(x: int):\n    y = [x] * 10 ** 10\n    return True\n",
                      "def g():\n    return 3\n"))
    verdicts = quick.verify_many(pairs)
    for v in verdicts:
        assert v.verdict in ("memory", "timeout"), v
    assert [v.verdict for v in verdicts].count("memory") >= 4
    assert _host_rss_mb() - before < 50  # nothing was allocated on this side
    healthy(quick)


def test_memory_limit_cannot_be_raised(quick, walk, healthy):
    g = ("def g():\n" + walk +
         "    r = os['sys'].modules['resource']\n"
         "    try:\n        r.setrlimit(r.RLIMIT_AS, (r.RLIM_INFINITY, r.RLIM_INFINITY))\n"
         "    except BaseException:\n        pass\n"
         "    x = bytearray(4 << 30)\n    return 3\n")
    v = quick.verify(Pair(PUZZLE, g))
    assert v.verdict == "memory", v
    healthy(quick)
