import os

from hypothesis import HealthCheck, settings

# These machines are shared and noisy: a slow example is not a failure of the property.
settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], max_examples=200)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
