"""learnlib.check graders: they accept correct answers and report the first mismatch of wrong ones."""

import torch

from learnlib import check
from learnlib.data.collate import pad_collate


def test_pad_collate_grader_accepts_reference_and_rejects_wrong_mask(capsys):
    assert check.pad_collate(pad_collate)

    def wrong_mask(items):
        padded, mask, labels = pad_collate(items)
        return padded, ~mask, labels

    result = check.pad_collate(wrong_mask)
    assert not result and "mask" in result.message and "differ" in result.message


def test_grader_reports_shapes_not_tracebacks():
    result = check.pad_collate(lambda items: (torch.zeros(1), torch.zeros(1), torch.zeros(1)))
    assert not result and "expected shape" in result.message


def test_grader_reports_exceptions_from_learner_code():
    def broken(items):
        return items[0][0] + "text"

    result = check.pad_collate(broken)
    assert not result and "your function raised TypeError" in result.message


def test_train_step_grader_detects_missing_zero_grad():
    def no_zero_grad(model, batch, optimizer, loss_fn):
        x, y = batch
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    result = check.train_step(no_zero_grad)
    assert not result and "zero_grad" in result.message


def test_evaluate_grader_detects_train_mode():
    def train_mode_eval(model, loader):
        with torch.no_grad():
            correct = sum(int((model(x).argmax(-1) == y).sum()) for x, y in loader)
        return correct / sum(len(y) for _, y in loader)

    assert not check.evaluate(train_mode_eval)


def test_demo_reports_a_stub_in_one_line_and_lets_other_errors_through(capsys):
    from learnlib import check

    def stub(*args):
        raise NotImplementedError("exercise: write your code here")

    with check.demo("pack_batches"):
        stub(1)
        raise AssertionError("not reached")
    assert "not implemented yet" in capsys.readouterr().out
    with check.demo("pack_batches"):
        print("ran")
    assert capsys.readouterr().out == "ran\n"
    import pytest
    with pytest.raises(ValueError), check.demo("pack_batches"):
        raise ValueError("a real error still stops the cell")
