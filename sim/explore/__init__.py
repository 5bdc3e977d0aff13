"""Design-space exploration: sweeps of synthesis and place-and-route points on Dask."""
