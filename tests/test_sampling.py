"""data/sampling.py: the seeded epoch order and items, and their sharding over the processes of a torchrun job."""
import pytest
import torch

from data import EpochSampler, SeededItems, build_training_loader, build_training_set
from tiny_dataset import PATCH, write_tiny_dataset


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny_data"))


def test_epoch_order_and_items_depend_only_on_seed_epoch_and_index():
    sampler = EpochSampler(10, seed=5)
    first, second = sampler.order(0), sampler.order(1)
    assert sorted(first) == list(range(10)) and first != second
    assert EpochSampler(10, seed=5).order(0) == first
    sampler.set_epoch(1, start=4)
    assert list(sampler) == [(1, index) for index in second[4:]] and len(sampler) == 6

    class RandomItems(torch.utils.data.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, index):
            return torch.rand(3)

    items = SeededItems(RandomItems(), seed=5)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    item = items[(2, 7)]
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    torch.manual_seed(123)
    assert torch.equal(items[(2, 7)], item)
    assert not torch.equal(items[(3, 7)], item) and not torch.equal(items[(2, 6)], item)


def test_samples_per_epoch_draws_seeded_random_items(data_dir):
    dataset = build_training_set(data_dir, PATCH, ["vimeo", "bvidvc"], samples_per_epoch=5)
    assert len(dataset) == 5
    items = SeededItems(dataset, seed=1)
    first = items[(0, 4)]
    assert len(first) == 5 and all(frame.shape == (3, PATCH, PATCH) for frame in first)
    assert all(torch.equal(a, b) for a, b in zip(items[(0, 4)], first))


class IndexItems(torch.utils.data.Dataset):
    """Item i is the number i."""

    def __len__(self) -> int:
        return 7

    def __getitem__(self, index: int) -> int:
        return index


def _steps_of_one_process_and_two_ranks():
    single, _ = build_training_loader(IndexItems(), batch_size=4, seed=4)
    shares = [build_training_loader(IndexItems(), 2, 4, num_replicas=2, rank=rank) for rank in range(2)]
    return single, shares


def test_two_ranks_take_the_items_of_one_process_with_twice_the_batch():
    single, shares = _steps_of_one_process_and_two_ranks()
    assert len(single) == len(shares[0][0]) == len(shares[1][0]) == 2
    steps = list(zip(single, *(loader for loader, _ in shares)))
    order = torch.cat([batch for batch, _, _ in steps]).tolist()
    assert sorted(order) == list(range(7))
    for step, (batch, *rank_batches) in enumerate(steps):
        taken = sorted(torch.cat(rank_batches).tolist())
        # 7 items: the ranks' last step is padded with the epoch's first item, so that both take 2 steps.
        assert taken == sorted(batch.tolist() + ([] if step == 0 else order[:1]))


def test_a_rank_resumes_an_epoch_at_its_next_batch():
    single, shares = _steps_of_one_process_and_two_ranks()
    steps = list(zip(single, *(loader for loader, _ in shares)))
    loader, sampler = shares[1]
    sampler.set_epoch(0, start=2)  # a resumed epoch: this rank's second batch only
    assert [batch.tolist() for batch in loader] == [steps[1][2].tolist()]


def test_sampler_rejects_bad_starts_and_ranks_and_pads_small_sets():
    sampler = EpochSampler(7, seed=4, num_replicas=2, rank=1)
    with pytest.raises(ValueError, match="position 5 of 4"):
        sampler.set_epoch(1, start=5)
    with pytest.raises(ValueError, match="rank 2 is not one of 2 replicas"):
        EpochSampler(7, seed=4, num_replicas=2, rank=2)
    assert [len(EpochSampler(3, seed=0, num_replicas=4, rank=rank)) for rank in range(4)] == [1, 1, 1, 1]
