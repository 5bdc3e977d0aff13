"""EIE sparse engine (Han et al., ISCA 2016): golden model beside the Amaranth RTL."""
