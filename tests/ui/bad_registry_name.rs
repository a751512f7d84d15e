// Registry names are snake_case and not keywords.
use forge_core::ForgeModel;

#[derive(ForgeModel)]
#[forge(name = "My-Model")]
struct Dashed {
    #[forge(config)]
    pooling: forge_core::config::Pooling,
}

#[derive(ForgeModel)]
#[forge(name = "struct")]
struct Keyword {
    #[forge(config)]
    pooling: forge_core::config::Pooling,
}

#[derive(ForgeModel)]
struct Unnamed {
    #[forge(config)]
    pooling: forge_core::config::Pooling,
}

fn main() {}
