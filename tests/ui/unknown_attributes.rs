// Unknown and conflicting attribute keys, all reported in one compile.
use forge_core::ForgeModel;

#[derive(ForgeModel)]
#[forge(nmae = "typo")]
struct Typos {
    #[forge(confg)]
    a: i64,
    #[forge(skip, config)]
    b: i64,
    #[forge(default = 3)]
    c: i64,
    #[forge(build = 1, config)]
    d: i64,
}

fn main() {}
