// Only structs with named fields can be models.
use forge_core::ForgeModel;

#[derive(ForgeModel)]
#[forge(name = "an_enum")]
enum AnEnum {
    A,
}

#[derive(ForgeModel)]
#[forge(name = "a_tuple")]
struct ATuple(i64);

#[derive(ForgeModel)]
#[forge(name = "generic_model")]
struct Generic<T> {
    #[forge(skip)]
    t: T,
}

fn main() {}
