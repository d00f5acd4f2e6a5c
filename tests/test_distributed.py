"""Meta-training on 2 CPU ranks (torch.distributed, gloo) equals the single-process run."""

import socket

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from neuromosaic.model.data import synthetic_dataset
from neuromosaic.model.train import TrainConfig, train

CFG = TrainConfig(channels=16, steps=20, neurons=16, meta_batch=4, iterations=3, eval_every=1000,
                  layout="2x2", rram="mosaic")


def _dataset():
    return synthetic_dataset(classes=20, samples_per_class=10, speakers=4, channels=16, steps=20)


def _rank(rank, world, port, out):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        s = train(CFG, out / f"rank{rank}", dataset=_dataset(), progress=False, return_params=True)
        torch.save([w.detach() for w in s["params"].tensors()], out / f"params{rank}.pt")
    finally:
        dist.destroy_process_group()


def test_two_ranks_equal_one(tmp_path):
    with socket.socket() as sock:                     # a free port on loopback for the rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_rank, args=(2, port, tmp_path), nprocs=2, join=True)
    single = train(CFG, tmp_path / "single", dataset=_dataset(), progress=False, return_params=True)
    ranks = [torch.load(tmp_path / f"params{r}.pt") for r in range(2)]
    for a, b, ref in zip(ranks[0], ranks[1], single["params"].tensors()):
        assert torch.equal(a, b)                      # every rank holds the same network
        assert torch.allclose(a, ref.detach(), rtol=1e-4, atol=1e-3)
    assert (tmp_path / "rank0" / "network.json").exists() and not (tmp_path / "rank1" / "network.json").exists()
