"""CLI subcommands: thin wrappers over the library functions. See ``tgsr.cli``."""


def add_placement_arguments(parser) -> None:
    """``--device`` and ``--dtype`` for every command that runs a model (see ``tgsr.models.placement``)."""
    parser.add_argument("--device", default="auto",
                        help="auto (default: CUDA when a GPU is visible, else the CPU), cpu, cuda, or cuda:N; a model "
                             "too large for one GPU is spread over all visible GPUs (device_map=auto)")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"],
                        help="weights and compute precision (default: bfloat16 on a GPU, float32 on the CPU)")
