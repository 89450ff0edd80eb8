import pytest

from ftlab import architectures


@pytest.mark.parametrize("name", list(architectures.REAL_MODELS))
def test_configs_give_the_published_parameter_counts(name):
    model = architectures.model_without_weights(name)
    n = sum(p.numel() for p in model.parameters())
    assert abs(n - architectures.PUBLISHED_PARAMETERS[name]) / architectures.PUBLISHED_PARAMETERS[name] < 0.01, n
    assert next(model.parameters()).device.type == "meta"
