"""Recipe helpers of the ResNet LRD recipe (ModelZoo layout); the work is done by the lrd packages."""
