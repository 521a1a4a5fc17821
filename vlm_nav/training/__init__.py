"""Training and evaluation of the embedded model on simulator frames. No ROS imports."""
