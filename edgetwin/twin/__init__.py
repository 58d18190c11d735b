"""The living twin: state estimation, personalisation, forecasts and what-if on the model."""
