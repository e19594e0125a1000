// The pod sandbox's pause process, built here so no image is pulled from a registry.
module floe.dev/testkit/realnode/pause

go 1.26.0
