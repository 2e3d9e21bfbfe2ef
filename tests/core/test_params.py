"""Parameter classes refuse bad values with ``UsageError`` (a ``ValueError`` too, as before), and
nothing else, whatever the values."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tiervault.core.chunker import ChunkerParams
from tiervault.core.crypto import ScryptParams
from tiervault.errors import ParameterError, UsageError
from tiervault.policy import Policy


@pytest.mark.parametrize(
    "make",
    [
        lambda: ScryptParams(log_n=21),
        lambda: ScryptParams(log_n=9),
        lambda: ScryptParams(r=17),
        lambda: ScryptParams(log_n=20, r=16),  # 2 GiB
        lambda: ChunkerParams(min_size=1).validate(),
        lambda: ChunkerParams(algorithm="other").validate(),
        lambda: ChunkerParams(min_size=8192, avg_size=4096).validate(),
        lambda: Policy(keep_last=-1),
        lambda: Policy(cool_after_days=9, cold_after_days=3),
    ],
)
def test_bad_parameters_are_usage_errors_and_value_errors(make: Any) -> None:
    with pytest.raises(UsageError) as info:
        make()
    assert isinstance(info.value, ValueError)  # what these classes raised before: callers keep working
    assert isinstance(info.value, ParameterError)


def test_the_scrypt_limits_are_the_ones_enforced() -> None:
    ScryptParams(log_n=ScryptParams.LOG_N_MIN)
    ScryptParams(log_n=ScryptParams.LOG_N_MAX)  # constructing derives nothing: cheap
    with pytest.raises(ParameterError):
        ScryptParams(log_n=ScryptParams.LOG_N_MAX + 1)
    with pytest.raises(ParameterError):
        ScryptParams(log_n=ScryptParams.LOG_N_MIN - 1)


@given(st.integers(-5, 40), st.integers(-2, 40), st.integers(-2, 40))
def test_scrypt_params_construct_or_refuse_cleanly(log_n: int, r: int, p: int) -> None:
    try:
        params = ScryptParams(log_n=log_n, r=r, p=p)
    except ParameterError:
        return
    assert ScryptParams.LOG_N_MIN <= params.log_n <= ScryptParams.LOG_N_MAX
    assert 128 * params.r * 2**params.log_n <= 1 << 30


@given(st.integers(0, 1 << 25), st.integers(0, 1 << 25), st.integers(0, 1 << 25), st.integers(-1, 5))
def test_chunker_params_validate_or_refuse_cleanly(mn: int, avg: int, mx: int, norm: int) -> None:
    params = ChunkerParams(min_size=mn, avg_size=avg, max_size=mx, normalization=norm)
    try:
        params.validate()
    except ParameterError:
        return
    assert params.min_size <= params.avg_size <= params.max_size
