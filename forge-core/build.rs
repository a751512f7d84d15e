fn main() {
    forge_build::link_libtorch();
}
