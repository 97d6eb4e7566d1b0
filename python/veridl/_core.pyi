from collections.abc import Callable, Mapping, Sequence
from typing import Annotated

import numpy
from numpy.typing import NDArray


class Error(Exception):
    pass

class Net:
    """A network: its NetSpec, parameters and BatchNorm running statistics."""

    @staticmethod
    def from_json(text: str, source: str, seed: int = 42) -> Net:
        """A network from NetSpec JSON text, He-initialised as train() does."""

    @staticmethod
    def from_file(path: str, seed: int = 42) -> Net:
        """A network from a NetSpec file."""

    @staticmethod
    def load(path: str, spec_json: str | None = None) -> Net:
        """A network from a safetensors checkpoint (the CLI's or save()'s)."""

    def save(self, path: str) -> None:
        """
        Writes a weights-only checkpoint (atomically), as the CLI's run folder does.
        """

    @property
    def spec_json(self) -> str:
        """The NetSpec, normalised, as JSON."""

    @property
    def name(self) -> str: ...

    @property
    def param_count(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def input_shape(self) -> list[int]: ...

    @property
    def normalize(self) -> str: ...

    @property
    def steps(self) -> int: ...

    @property
    def data(self) -> str: ...

    @property
    def recipe_batch(self) -> int: ...

    def fit(self, overrides: str, data: str | None, x: Annotated[NDArray, dict(shape=(None, None, None, None), order='C', device='cpu')] | None, y: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, val_x: Annotated[NDArray, dict(shape=(None, None, None, None), order='C', device='cpu')] | None, val_y: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, val_split: float, seed: int, eval_every: int, threads: int, verbose: bool, progress: Callable | None, device: str = 'native', iree_target: str = '', iree_cache: str = '', make_device: object | None = None, keep_subnormals: bool = False) -> dict:
        """
        Trains (train::train) from the current parameters; overrides: a JSON object of recipe keys.
        """

    def evaluate(self, data: str | None, x: Annotated[NDArray, dict(shape=(None, None, None, None), order='C', device='cpu')] | None, y: Annotated[NDArray[numpy.int32], dict(shape=(None,), order='C', device='cpu', writable=False)] | None, split: str, batch: int) -> dict:
        """Top-1, top-5 and mean loss (train::evaluate)."""

    def predict(self, x: Annotated[NDArray, dict(shape=(None, None, None, None), order='C', device='cpu')], out: Annotated[NDArray[numpy.float32], dict(shape=(None, None), order='C', device='cpu')], probabilities: bool, batch: int) -> None:
        """Logits or probabilities into out."""

    def tensors(self) -> dict:
        """The checkpoint's tensors by name (copies)."""

    def set_tensors(self, tensors: Mapping[str, Annotated[NDArray[numpy.float32], dict(order='C', device='cpu', writable=False)]]) -> None:
        """Replaces every tensor (names and shapes checked)."""

    def verify(self, batch: int, seed: int, trials: int) -> dict:
        """The whole-network contract at this batch."""

    def export_stablehlo(self, path: str | None, batch: int, eval: bool) -> str:
        """The StableHLO module of `veridl export`."""

    def export_onnx(self, path: str) -> None:
        """The ONNX model of `veridl export --onnx` (inference graph)."""

def verify(contracts: Sequence[str] | None, chapter: int | None, mutants: bool, seed: int, trials: int, production: bool) -> list:
    """
    Runs the contract registry (or its mutants): one dict per contract (or mutant).
    """

def load_data(name: str, shape: Sequence[int] | None) -> dict:
    """
    A dataset's splits as numpy arrays, read by the library's loaders (data::load_split).
    """

def run_cli(argv: Sequence[str], make_device: object) -> int:
    """
    Runs the veridl command line (argv[0] the program name) in this process, IREE devices made by make_device; returns its exit status.
    """

def iree_compile_flags(device: str, target: str = '') -> list[str]:
    """
    iree-compile's flags for --device iree:<driver> and --iree-target (export/iree_target.hpp).
    """

def kernel_variant() -> str:
    """
    The kernel variant in use (portable, avx2, avx512): chosen at run time from the CPU.
    """
