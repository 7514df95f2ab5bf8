echo "app built for $TARGET, running on $(uname -m)"
