"""The budgeted-batch packing grader: the library passes, typical mistakes are named, a stub fails cleanly."""

from learnlib import check
from learnlib.train.batching import pack_greedy


def solution(sizes, order, budget):
    batches, current, total = [], [], 0
    for i in order:
        if current and total + sizes[i] > budget:
            batches.append(current)
            current, total = [], 0
        current.append(i)
        total += sizes[i]
    return batches + ([current] if current else [])


def test_library_and_written_out_solution_pass(capsys):
    assert check.pack_batches(lambda sizes, order, budget: pack_greedy(order, sizes, budget))
    assert check.pack_batches(solution)
    assert "PASSED pack_batches" in capsys.readouterr().out


def test_sorted_items_are_named(capsys):
    assert not check.pack_batches(lambda sizes, order, budget: solution(sizes, sorted(order, key=lambda i: -sizes[i]),
                                                                        budget))
    assert "sorted by size first" in capsys.readouterr().out


def test_dropped_last_batch_is_named(capsys):
    assert not check.pack_batches(lambda sizes, order, budget: solution(sizes, order, budget)[:-1])
    assert "last, partly filled batch is missing" in capsys.readouterr().out


def test_counting_items_is_named(capsys):
    assert not check.pack_batches(lambda sizes, order, budget: solution([1] * len(sizes), order, budget))
    assert "counts items, not their sizes" in capsys.readouterr().out


def test_stub_fails_with_a_hint(capsys):
    def stub(sizes, order, budget):
        raise NotImplementedError("exercise: write your code here, then run the check below")

    assert not check.pack_batches(stub)
    out = capsys.readouterr().out
    assert "not implemented yet" in out and "Hint:" in out
