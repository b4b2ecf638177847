"""Writers of small data sets in each task's official on-disk layout (good and malformed), shared by the tests."""
